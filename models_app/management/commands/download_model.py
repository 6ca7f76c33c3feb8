"""manage.py download_model REPO [--revision R] [--quantization q4] [--token-env VAR]

Runs the same job the page queues, in this process, with a terminal progress bar."""

from __future__ import annotations

import os
from argparse import ArgumentDefaultsHelpFormatter

from django.core.management.base import CommandError

from models_app.forms.downloads import DownloadForm
from models_app.jobs.download import run_download
from models_app.ml import quantization as quant
from models_app.models import ModelStatus
from models_app.services import downloads

from ._progress import JobCommand, run_job_with_bar


class Command(JobCommand):
    help = "Download a HuggingFace causal LM into the studio and quantize it."
    cancelled_message = "Cancelled: the download stopped and its files were removed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("repo_id")
        parser.formatter_class = ArgumentDefaultsHelpFormatter
        parser.add_argument("--revision", default="main", help="branch, tag or commit")
        parser.add_argument(
            "--quantization",
            default=quant.DEFAULT_FORMAT,
            type=str.lower,
            choices=quant.FORMATS,
            help="format, in any case (Q4 or q4)",
        )
        parser.add_argument(
            "--token-env",
            metavar="VAR",
            help="name of the environment variable holding the access token "
            "(HF_TOKEN is used when this is not given)",
        )
        parser.add_argument(
            "--trust-remote-code",
            action="store_true",
            help="run the repository's own code (needs MISTUDIO_ALLOW_REMOTE_CODE=1)",
        )

    def handle(self, *args, **options) -> None:
        token = None
        if options["token_env"]:
            token = os.environ.get(options["token_env"])
            if not token:
                raise CommandError(f"Environment variable {options['token_env']} is not set.")
        form = DownloadForm(
            data={
                "repo_id": options["repo_id"],
                "revision": options["revision"],
                "quantization": options["quantization"],
                "token": token or "",
                "trust_remote_code": options["trust_remote_code"],
            }
        )
        if not form.is_valid():
            raise CommandError(" ".join(str(e) for errors in form.errors.values() for e in errors))
        with self.stops.held():  # from here a stop cancels the record's job: none is left queued
            try:
                record = form.create(queue=False)
            except downloads.AlreadyInStudio as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(
                f"Model {record.pk}: {record.repo_id}@{record.revision} ({quant.LABELS[record.quantization]})"
            )
            run_job_with_bar(self, run_download, record, "show")
        if record.status != ModelStatus.READY:
            raise CommandError(record.error_message or f"Download {record.get_status_display().lower()}.")
        note = (
            f" (requested {record.quantization}: {record.quantization_note})" if record.format_differs else ""
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Ready: {record.name} [{record.effective_label}]{note}, "
                f"{record.params_count:,} parameters, {record.memory_footprint_bytes:,} bytes in memory."
            )
        )
