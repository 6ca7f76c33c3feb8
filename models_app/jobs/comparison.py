"""The comparison job: extractions of one model's formats compared on their shared real tokens
(models_app.ml.compare), on the downloads queue, or inline through the same runner for the
terminal. The library checks the job's cancel flag between chunks and reports the tokens read,
which the record keeps for the terminal's bar; the result is stored on the record."""

from __future__ import annotations

from ..ml import compare
from ..ml.compare import ComparisonProgress
from ..models import Comparison, Extraction
from .runner import Job, run


def run_comparison(comparison_pk: int) -> str:
    return run(Comparison, comparison_pk, _compare)


def _compare(job: Job) -> dict:
    record = Comparison.objects.select_related("base").get(pk=job.pk)
    others = Extraction.objects.in_bulk(record.other_ids)
    for pk in [record.base_id, *record.other_ids]:  # what the command checked, read afresh
        extraction = record.base if pk == record.base_id else others.get(pk)
        if extraction is None:
            raise compare.ComparisonError(f"Extraction {pk} no longer exists.")
        if not extraction.is_completed:
            raise compare.ComparisonError(f"Extraction {pk} is not completed: only completed ones compare.")

    total = [0]

    def report(progress: ComparisonProgress) -> None:
        total[0] = progress.tokens_total
        share = progress.tokens_done / progress.tokens_total if progress.tokens_total else 1.0
        job.tracker.update(
            progress=100 * share, tokens_done=progress.tokens_done, tokens_total=progress.tokens_total
        )

    result = compare.compare(
        record.base.output_dir,
        [others[pk].output_dir for pk in record.other_ids],
        on_progress=report,
        should_cancel=job.should_cancel,
    )
    # The ids the studio knows them by, whatever the folders' metadata.json say.
    result["base"] = record.base_id
    for entry, pk in zip(result["others"], record.other_ids, strict=True):
        entry["id"] = pk
    return {"progress": 100.0, "tokens_done": total[0], "tokens_total": total[0], "result": result}
