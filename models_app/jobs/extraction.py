"""The extraction task (GPU queue): loads the model in its stored format (or finds it still loaded
in this worker, models_app/jobs/resident.py) and runs the engine, recording queued -> loading ->
extracting -> saving -> completed / failed / cancelled."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings as django_settings

from ..models import Extraction, ExtractionStatus
from .runner import Job, run


def run_extraction(extraction_pk: int) -> str:
    return run(Extraction, extraction_pk, _extract)


def _extract(job: Job) -> dict:
    from . import resident, warmup

    warmup.wait()  # a worker still warming up finishes those imports first, not beside these
    from ..ml import datasets, extraction, loading, storage

    record = Extraction.objects.select_related("model", "dataset").get(pk=job.pk)
    model = record.model
    model.check_remote_code()
    job.tracker.phase(ExtractionStatus.LOADING)
    fmt, device = model.effective_quantization or model.quantization, loading.default_device()

    def load() -> loading.LoadedModel:
        return loading.load(
            Path(model.file_path),
            fmt,
            device=device,
            trust_remote_code=model.trust_remote_code,
            should_cancel=job.should_cancel,
            quantized_dir=Path(model.quantized_path) if model.quantized_path else None,
        )

    with resident.loaded_model(model, fmt, device, load) as (loaded, from_memory):
        job.check()
        texts = datasets.TextDataset(Path(record.dataset.file_path))
        total = len(texts) if record.max_samples is None else min(len(texts), record.max_samples)
        job.tracker.phase(
            ExtractionStatus.EXTRACTING, samples_total=total, output_path=str(record.output_dir)
        )

        first = True  # the first samples done are written at once, not held back by the throttle

        def on_progress(p: extraction.ExtractionProgress) -> None:
            nonlocal first
            finishing = p.samples_done == p.samples_total
            extra = {"status": ExtractionStatus.SAVING} if finishing else {}
            job.tracker.update(
                force=finishing or first,
                **extra,
                samples_done=p.samples_done,
                progress=round(100 * p.samples_done / p.samples_total, 2),
                tokens_per_second=p.tokens_per_second,
                eta_seconds=p.eta_seconds,
                bytes_written=p.bytes_written,
                current_batch_size=p.batch_size,
            )
            first = False

        settings = extraction.ExtractionSettings(
            layers=record.layers,
            hooks=record.hooks,
            batch_size=record.batch_size,
            micro_batch_size=record.micro_batch_size,
            max_samples=record.max_samples,
            context_length=record.context_length,
            top_k=record.top_k,
            dtype=record.dtype,
        )
        context = {
            "model": {
                "id": model.pk,
                "repo_id": model.repo_id,
                "revision": model.revision,
                "commit_sha": model.commit_sha,
                "requested_quantization": model.quantization,
                "effective_quantization": loaded.effective_format,
                "device": loaded.device,
                # "memory": kept loaded by this worker since an earlier job
                "loaded_from": "memory" if from_memory else "disk",
            },
            "dataset": {
                "id": record.dataset.pk,
                "name": record.dataset.name,
                "source": f"{record.dataset.source}:{record.dataset.source_detail}",
            },
            "extraction_id": job.pk,
        }
        meta = extraction.extract(
            loaded.model,
            loaded.tokenizer,
            texts,
            settings,
            record.output_dir,
            on_progress=on_progress,
            should_cancel=job.should_cancel,
            metadata=context,
            # A checkpoint continues only the same weights on the same device over the same texts.
            resume_key={
                "model": [model.repo_id, model.commit_sha, loaded.effective_format, loaded.device],
                "dataset": [record.dataset.pk, storage.tree_size(Path(record.dataset.file_path))],
            },
            checkpoint_seconds=django_settings.EXTRACTION_CHECKPOINT_SECONDS,
        )
    return {
        "progress": 100.0,
        "samples_done": meta["samples"],
        "metadata": meta,
        "eta_seconds": None,
        "tokens_per_second": meta["timings"]["tokens_per_second"] or 0.0,
        "size_bytes": storage.disk_usage(record.output_dir),
    }
