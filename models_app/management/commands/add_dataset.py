"""manage.py add_dataset PATH_OR_HF_REPO --name NAME [--text-field F] [--revision R] [--files GLOB]"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.management.base import CommandError

from models_app.ml.datasets import DatasetError
from models_app.ml.hub import HubError
from models_app.services import datasets as dataset_services

from ._progress import JobCommand, run_job_with_bar


class Command(JobCommand):
    help = "Add a text dataset from a local file or a HuggingFace dataset repository."
    cancelled_message = "Cancelled: the dataset was not added and its files were removed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("source", help="a .txt/.jsonl/.json/.csv/.parquet file, or owner/name on the Hub")
        parser.add_argument("--name", default="")
        parser.add_argument("--text-field", default="text", help="JSON field or CSV/Parquet column")
        parser.add_argument("--revision", default="main", help="Hub datasets only")
        parser.add_argument("--files", default="", help="Hub datasets only: which files (glob)")
        parser.add_argument("--token-env", metavar="VAR", help="variable holding a Hub token")

    def handle(self, *args, **options) -> None:
        source = options["source"]
        token = os.environ.get(options["token_env"]) if options["token_env"] else None
        try:
            if Path(source).exists():
                record = dataset_services.add_from_file(
                    Path(source), options["name"], options["text_field"], run=self.run_job
                )
            else:
                record = dataset_services.add_from_hub(
                    source,
                    options["name"],
                    options["revision"],
                    options["files"],
                    options["text_field"],
                    token,
                    run=self.run_job,
                )
        except (DatasetError, HubError) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from exc
        self.stdout.write(
            self.style.SUCCESS(f"Dataset {record.pk}: {record.name}, {record.num_samples:,} samples")
        )

    def run_job(self, job, record) -> None:
        run_job_with_bar(self, job, record, "show_dataset")
