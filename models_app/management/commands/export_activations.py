"""manage.py export_activations ID --format {saelens,tokens} [--hook KEY ...] [--context-size N]
[--shuffle-seed S] [--out DIR]: a completed extraction's activations in the files SAE trainers
read. The export is a record like one started from the extraction's page (it is listed there),
run by this process under a terminal progress bar; a stop signal (Ctrl-C) cancels it, and its
folder is removed."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from models_app.forms.exports import ExportForm
from models_app.jobs.export import run_export
from models_app.ml import exports
from models_app.models import ExportStatus, Extraction

from ._progress import JobCommand, run_job_with_bar


class Command(JobCommand):
    help = (
        "Export a completed extraction's activations: `saelens`, a datasets directory SAELens reads as"
        " a pre-computed activation cache (rows of packed real tokens, a column per hook named after"
        " its module path, token_ids); `tokens`, per hook a flat [real tokens, d] .npy with token ids,"
        " sample indexes and positions beside it. Padding is never exported."
    )
    cancelled_message = "Cancelled: the export stopped and its folder was removed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("extraction_id", type=int, help="the extraction's id (its folder's name)")
        parser.add_argument("--format", required=True, type=str.lower, choices=exports.FORMATS)
        parser.add_argument(
            "--hook",
            action="append",
            dest="hooks",
            metavar="KEY",
            help="a hook to export, as its files name it (layer_3_mlp); repeat for several."
            " Default: every hook extracted",
        )
        parser.add_argument(
            "--context-size",
            type=int,
            metavar="N",
            help="saelens: tokens per row (default: the extraction's context length)",
        )
        parser.add_argument(
            "--shuffle-seed", type=int, metavar="S", help="saelens: shuffle the rows with this seed"
        )
        parser.add_argument(
            "--out",
            type=Path,
            metavar="DIR",
            help="a folder that does not exist yet (default: exports/ID-FORMAT in the extraction's)",
        )

    def handle(self, *args, **options) -> None:
        record = Extraction.objects.filter(pk=options["extraction_id"]).first()
        if record is None:
            raise CommandError(f"No extraction with id {options['extraction_id']}.")
        data = {
            "format": options["format"],
            "hooks": options["hooks"] or [],
            "context_size": options["context_size"],
            "shuffle_seed": options["shuffle_seed"],
        }
        form = ExportForm({k: v for k, v in data.items() if v is not None}, extraction=record)
        if not form.is_valid():
            raise CommandError(" ".join(str(e) for errors in form.errors.values() for e in errors))
        if options["out"] is not None and options["out"].exists():
            raise CommandError(f"{options['out']} already exists: remove it or choose another folder.")
        with self.stops.held():  # from here a stop cancels the record's job: none is left queued
            export = form.create(queue=False, folder=options["out"])
            run_job_with_bar(self, run_export, export, "show_export")
        if export.status != ExportStatus.COMPLETED:
            raise CommandError(export.error_message or f"Export {export.get_status_display().lower()}.")
        manifest = export.manifest
        detail = f"{manifest['tokens']:,} tokens"
        if export.format == "saelens":
            detail = f"{manifest['rows']:,} rows of {manifest['context_size']} ({detail}"
            detail += f"; {manifest['dropped_tokens']:,} in a last partial row left out)"
        self.stdout.write(self.style.SUCCESS(f"Export {export.pk}: {detail} -> {export.folder}"))
