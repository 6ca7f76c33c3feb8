"""The download task (downloads queue): downloading -> loading -> quantizing -> ready.

It takes the record's id only; the access token is read from the record (encrypted) and erased
when the job ends. The transfer runs in a child process so Cancel stops it at once."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from .. import progress, token_crypto
from ..ml import download_process, hub, storage
from ..ml import quantization as quant
from ..models import LanguageModel, ModelStatus, overall_progress
from .runner import Job, run


def run_download(model_pk: int) -> str:
    return run(LanguageModel, model_pk, _download)


def _download(job: Job) -> dict:
    record = LanguageModel.objects.get(pk=job.pk)
    record.check_remote_code()
    given = token_crypto.decrypt(record.encrypted_token)
    if given:
        job.secrets.append(given)
    token = token_crypto.hub_token(given, record.use_operator_token)  # False: not the operator's either
    pre = hub.preflight(
        record.repo_id,
        record.revision,
        token=token,
        endpoint=settings.HF_ENDPOINT,
        trust_remote_code=record.trust_remote_code,
    )
    snapshot = storage.snapshot_dir(settings.HF_CACHE_DIR, pre.repo_id, pre.commit_sha)
    missing = sum(f.size for f in pre.files if not (snapshot / f.path).exists())
    free = hub.free_disk_bytes(settings.HF_CACHE_DIR)
    if missing > free:
        raise hub.HubError(
            f"Not enough disk space: the download needs {_gb(missing)} and {_gb(free)} is free."
        )
    job.tracker.phase(
        ModelStatus.DOWNLOADING,
        "Starting download",
        commit_sha=pre.commit_sha,
        architecture=pre.summary["model_type"],
        architecture_config=pre.config,
        bytes_total=pre.download_bytes,
        file_path=str(snapshot),
    )

    def on_progress(p: hub.DownloadProgress) -> None:
        job.tracker.update(
            **progress.download_fields(p.done, p.total, p.speed, p.eta_seconds, p.file, p.idle_seconds)
        )

    download_process.download_in_child(
        pre,
        settings.HF_CACHE_DIR,
        token=token,
        endpoint=settings.HF_ENDPOINT,
        on_progress=on_progress,
        should_cancel=job.should_cancel,
    )
    job.tracker.update(
        force=True,
        bytes_downloaded=pre.download_bytes,
        progress=overall_progress(ModelStatus.DOWNLOADING, 1.0),
        speed_bps=0.0,
        eta_seconds=None,
        stalled_since=None,
    )
    job.check()
    return _load_and_quantize(job, record, snapshot, pre)


def _load_and_quantize(job: Job, record: LanguageModel, snapshot: Path, pre: hub.Preflight) -> dict:
    from . import warmup

    job.tracker.phase(
        ModelStatus.LOADING, "Reading the checkpoint", progress=overall_progress(ModelStatus.LOADING, 0.0)
    )
    warmup.wait()  # a worker still warming up finishes those imports first, not beside these
    from ..ml import architecture, hooks, loading

    params = loading.count_parameters_on_disk(snapshot) or pre.params_count
    points = hooks.hook_points_for_folder(snapshot, trust_remote_code=record.trust_remote_code)
    summary = architecture.summarize(pre.config, hook_points=points.templates())
    job.tracker.update(
        force=True,
        params_count=params,
        architecture_summary=summary,
        memory_required_bytes=quant.estimate_memory_bytes(params, record.quantization),
        progress=overall_progress(ModelStatus.LOADING, 1.0),
    )
    job.check()

    fmt = record.quantization
    job.tracker.phase(
        ModelStatus.QUANTIZING,
        f"Loading in {quant.LABELS[fmt]}",
        progress=overall_progress(ModelStatus.QUANTIZING, 0.0),
    )
    # Always from the checkpoint, never from a stored copy: this job builds the copy, and a model
    # loaded from a stored bitsandbytes copy cannot be saved again.
    loaded = loading.load(
        snapshot,
        fmt,
        trust_remote_code=record.trust_remote_code,
        should_cancel=job.should_cancel,
        on_attempt=lambda f: job.tracker.update(force=True, phase_detail=f"Loading in {quant.LABELS[f]}"),
    )
    job.check()
    effective = loaded.effective_format
    stored = None
    if effective in quant.SERIALIZED_FORMATS:
        job.tracker.update(
            force=True,
            phase_detail=f"Saving the {quant.LABELS[effective]} copy",
            progress=overall_progress(ModelStatus.QUANTIZING, 0.5),
        )
        stored = loading.save_quantized(loaded, record.quantized_dir(effective))
    footprint, reason = loaded.footprint_bytes, loaded.fallback_reason
    del loaded
    job.check()
    disk = storage.snapshot_size(snapshot) + (storage.tree_size(stored) if stored else 0)
    return {
        "effective_quantization": effective,
        "quantization_note": reason,
        "memory_footprint_bytes": footprint,
        "disk_size_bytes": disk,
        "quantized_path": str(stored or ""),
        "progress": 100.0,
        "speed_bps": 0.0,
        "eta_seconds": None,
    }


def _gb(nbytes: int) -> str:
    return f"{nbytes / 1e9:.2f} GB"
