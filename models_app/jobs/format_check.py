"""The format-check task (GPU queue): each of a repository's downloaded formats loaded in turn (one
in memory at a time, not kept afterwards: a check runs every format once) and run over the same
samples (models_app.ml.format_check); the result is stored on the record."""

from __future__ import annotations

from pathlib import Path

from ..models import Dataset, DatasetStatus, FormatCheck, LanguageModel, ModelStatus
from ..models.format_check import format_of
from .runner import Job, run


def run_format_check(check_pk: int) -> str:
    return run(FormatCheck, check_pk, _check)


def _check(job: Job) -> dict:
    from . import warmup

    warmup.wait()
    from ..ml import datasets, format_check, loading, results, storage

    record = FormatCheck.objects.select_related("dataset").get(pk=job.pk)
    found = LanguageModel.objects.in_bulk(record.model_ids)
    device = loading.default_device()
    formats = []
    for pk in record.model_ids:  # what the form checked, read afresh
        model = found.get(pk)
        if model is None or model.status != ModelStatus.READY:
            raise format_check.FormatCheckError(f"Model {pk} is no longer ready: check the formats again.")
        model.check_remote_code()
        formats.append(format_check.Format(format_of(model), pk, _loader(model, device, job)))
    texts = datasets.TextDataset(Path(_ready(record.dataset).file_path))
    samples = texts[: record.samples]

    def report(p: format_check.FormatCheckProgress) -> None:
        share = (p.passes_done + p.samples_done / max(p.samples_total, 1)) / p.passes_total
        job.tracker.update(progress=round(100 * share, 2))

    try:
        result = format_check.check(
            formats,
            samples,
            context_length=record.context_length,
            batch_size=record.batch_size,
            scratch=record.scratch,
            on_progress=report,
            should_cancel=job.should_cancel,
        )
    finally:
        storage.remove_tree(record.scratch)
    result["dataset"] = {"id": record.dataset.pk, "name": record.dataset.name}
    # A format whose logits overflow gives NaN or inf figures: JSON (and PostgreSQL) hold null.
    return {"progress": 100.0, "result": results.finite(result)}


def _ready(dataset: Dataset) -> Dataset:
    from ..ml import format_check

    if dataset.status != DatasetStatus.READY:
        raise format_check.FormatCheckError(f"The dataset {dataset.name} is not ready.")
    return dataset


def _loader(model: LanguageModel, device: str, job: Job):
    from ..ml import loading

    def load() -> loading.LoadedModel:
        return loading.load(
            Path(model.file_path),
            format_of(model),
            device=device,
            trust_remote_code=model.trust_remote_code,
            should_cancel=job.should_cancel,
            quantized_dir=Path(model.quantized_path) if model.quantized_path else None,
        )

    return load
