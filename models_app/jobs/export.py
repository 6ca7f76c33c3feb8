"""The export job: a completed extraction's files written out for SAE trainers
(models_app.ml.exports), on the downloads queue, or inline through the same runner for the
terminal. The library checks the job's cancel flag between batches and reports its progress,
which the record keeps for the page, the API and the terminal's bar."""

from __future__ import annotations

from ..ml import exports, storage
from ..ml.exports import ExportProgress
from ..models import ActivationExport
from .runner import Job, run


def run_export(export_pk: int) -> str:
    return run(ActivationExport, export_pk, _export)


def _export(job: Job) -> dict:
    record = ActivationExport.objects.select_related("extraction").get(pk=job.pk)
    if refused := record.extraction.export_refusal:  # the form checked it; the job reads it afresh
        raise exports.ExportError(refused)
    options: dict = {"hooks": record.hooks or None}
    if record.format == "saelens":
        options.update(context_size=record.context_size, shuffle_seed=record.shuffle_seed)

    def report(progress: ExportProgress) -> None:
        share = progress.tokens_done / progress.tokens_total if progress.tokens_total else 1.0
        job.tracker.update(
            progress=100 * share,
            tokens_done=progress.tokens_done,
            tokens_total=progress.tokens_total,
            tokens_per_second=progress.tokens_per_second,
            eta_seconds=progress.eta_seconds,
        )

    manifest = exports.export(
        record.format,
        record.extraction.output_dir,
        record.folder,
        on_progress=report,
        should_cancel=job.should_cancel,
        **options,
    )
    return {
        "progress": 100.0,
        "tokens_done": manifest["tokens"],
        "tokens_total": manifest["tokens"],
        "eta_seconds": None,
        "manifest": manifest,
        "size_bytes": storage.tree_size(record.folder),
    }
