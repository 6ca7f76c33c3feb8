"""The extraction task (GPU queue): loads the model in its stored format and runs the engine,
recording queued -> loading -> extracting -> saving -> completed / failed / cancelled."""
from __future__ import annotations

import logging
from pathlib import Path

from django.utils import timezone

from . import extraction_services as services, progress
from .models import EXTRACTION_ACTIVE, Extraction, ExtractionStatus

log = logging.getLogger(__name__)


def _update(pk: int, **fields) -> None:
    progress.extraction(pk, force=True, **fields)


def run_extraction(extraction_pk: int) -> str:
    if not Extraction.claim(extraction_pk):
        return "not claimed"
    record = Extraction.objects.select_related("model", "dataset").get(pk=extraction_pk)
    outcome = ExtractionStatus.FAILED
    try:
        _run(record)
        outcome = ExtractionStatus.COMPLETED
    except Exception as exc:
        from .ml.extraction import ExtractionCancelled

        services.remove_outputs(record)
        if isinstance(exc, ExtractionCancelled):
            outcome = ExtractionStatus.CANCELLED
            _update(extraction_pk, status=outcome, completed_at=timezone.now(), eta_seconds=None)
        else:
            message = _user_message(exc)
            log.warning("extraction %s failed: %s", extraction_pk, message)
            _update(extraction_pk, status=outcome, error_message=message, completed_at=timezone.now(),
                    eta_seconds=None)
    finally:
        Extraction.objects.filter(pk=extraction_pk, status__in=EXTRACTION_ACTIVE).update(
            status=ExtractionStatus.FAILED, error_message="The job stopped unexpectedly.",
            completed_at=timezone.now())
    return outcome


def _user_message(exc: BaseException) -> str:
    from .ml.extraction import ExtractionError
    from .ml.hooks import UnsupportedArchitecture
    from .ml.loading import LoadError

    if isinstance(exc, (ExtractionError, UnsupportedArchitecture, LoadError)):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno == 28:
        return "The disk is full: free some space and retry."
    return f"Unexpected error ({type(exc).__name__}): {exc}"


def _run(record: Extraction) -> None:
    from .ml import datasets, extraction, loading

    pk, model = record.pk, record.model
    loaded = loading.load(Path(model.file_path), model.effective_quantization or model.quantization,
                          trust_remote_code=model.trust_remote_code,
                          quantized_dir=Path(model.quantized_path) if model.quantized_path else None)
    texts = datasets.TextDataset(Path(record.dataset.file_path))
    total = len(texts) if record.max_samples is None else min(len(texts), record.max_samples)
    _update(pk, status=ExtractionStatus.EXTRACTING, samples_total=total,
            output_path=str(services.output_dir(record)))
    def on_progress(p: extraction.ExtractionProgress) -> None:
        finishing = p.samples_done == p.samples_total
        extra = {"status": ExtractionStatus.SAVING} if finishing else {}
        progress.extraction(pk, force=finishing, **extra, samples_done=p.samples_done,
                            progress=round(100 * p.samples_done / p.samples_total, 2),
                            tokens_per_second=p.tokens_per_second, eta_seconds=p.eta_seconds,
                            bytes_written=p.bytes_written, current_batch_size=p.batch_size)

    def should_cancel() -> bool:  # once per batch: one indexed read next to a forward pass
        return Extraction.objects.filter(pk=pk, cancel_requested=True).exists()

    settings = extraction.ExtractionSettings(
        layers=record.layers, hooks=record.hooks, batch_size=record.batch_size,
        max_samples=record.max_samples, context_length=record.context_length, top_k=record.top_k,
        dtype=record.dtype)
    context = {"model": {"id": model.pk, "repo_id": model.repo_id, "revision": model.revision,
                         "commit_sha": model.commit_sha, "requested_quantization": model.quantization,
                         "effective_quantization": loaded.effective_format, "device": loaded.device},
               "dataset": {"id": record.dataset.pk, "name": record.dataset.name,
                           "source": f"{record.dataset.source}:{record.dataset.source_detail}"},
               "extraction_id": pk}
    meta = extraction.extract(loaded.model, loaded.tokenizer, texts, settings, services.output_dir(record),
                              on_progress=on_progress, should_cancel=should_cancel, metadata=context)
    _update(pk, status=ExtractionStatus.COMPLETED, progress=100.0, samples_done=meta["samples"],
            metadata=meta, completed_at=timezone.now(), eta_seconds=None)
