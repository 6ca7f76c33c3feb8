"""manage.py export_activations ID --format {saelens,tokens} [--hook KEY ...] [--context-size N]
[--shuffle-seed S] [--out DIR]: a completed extraction's activations in the files SAE trainers
read, written by this process under a terminal progress bar. models_app/ml/exports does the work;
a stop signal (Ctrl-C) cancels it, and the export's folder is removed."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import CommandError, OutputWrapper

from models_app.jobs.runner import user_message
from models_app.ml import exports
from models_app.ml.errors import UserError
from models_app.models import Extraction

from ._interrupts import Interrupted
from ._progress import JobCommand, ProgressBar


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
            help="a folder that does not exist yet (default: exports/FORMAT in the extraction's)",
        )

    def handle(self, *args, **options) -> None:
        record = self._completed(options["extraction_id"])
        fmt = options["format"]
        format_options = {"hooks": options["hooks"]}
        if fmt == "saelens":
            format_options.update(context_size=options["context_size"], shuffle_seed=options["shuffle_seed"])
        elif options["context_size"] is not None or options["shuffle_seed"] is not None:
            raise CommandError("--context-size and --shuffle-seed apply to the saelens format only.")
        out = options["out"] or record.output_dir / "exports" / fmt

        bar = ProgressBar(OutputWrapper(sys.stderr) if sys.stderr.isatty() else None)
        try:
            with self.stops.held():  # a stop is only noted: the export sees it and removes its folder
                manifest = exports.export(
                    fmt,
                    record.output_dir,
                    out,
                    on_progress=bar.show_export,
                    should_cancel=lambda: self.stops.received is not None,
                    **format_options,
                )
        except exports.ExportCancelled:
            bar.clear()
            assert self.stops.received is not None  # nothing else cancels an export here
            raise Interrupted(self.stops.received, self.cancelled_message) from None
        except (UserError, OSError) as exc:  # a refusal, a full disk, a folder it may not write in
            bar.close()
            raise CommandError(user_message(exc)) from None
        bar.close()
        detail = f"{manifest['tokens']:,} tokens"
        if fmt == "saelens":
            detail = f"{manifest['rows']:,} rows of {manifest['context_size']} ({detail}"
            detail += f"; {manifest['dropped_tokens']:,} in a last partial row left out)"
        self.stdout.write(self.style.SUCCESS(f"Exported {detail} -> {out}"))

    def _completed(self, pk: int) -> Extraction:
        record = Extraction.objects.filter(pk=pk).first()
        if record is None:
            raise CommandError(f"No extraction with id {pk}.")
        if not record.is_completed:
            raise CommandError(
                f"Extraction {pk} has not completed ({record.get_status_display().lower()}):"
                " only a completed extraction can be exported."
            )
        return record
