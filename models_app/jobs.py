"""Django-Q2 task functions. They take ids only (never a token), claim the record with a
conditional UPDATE, and guarantee it never stays in a running state."""
from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from . import progress, secrets, services
from .ml import hub, quantization as quant, storage
from .models import ACTIVE_STATUSES, LanguageModel, ModelStatus

log = logging.getLogger(__name__)


class Cancelled(Exception):
    pass


def download_model(model_pk: int) -> str:
    """Download, load and quantize one model: downloading -> loading -> quantizing -> ready."""
    if not LanguageModel.claim(model_pk, ModelStatus.DOWNLOADING):
        return "not claimed"
    record = LanguageModel.objects.get(pk=model_pk)
    token = secrets.decrypt(record.encrypted_token)  # None: huggingface_hub falls back to HF_TOKEN
    outcome = ModelStatus.ERROR
    try:
        _run_download(record, token)
        outcome = ModelStatus.READY
    except (Cancelled, hub.DownloadCancelled):
        _release(model_pk)
        progress.finish(model_pk, ModelStatus.CANCELLED)
        outcome = ModelStatus.CANCELLED
    except Exception as exc:  # any failure ends as a readable error, files cleaned up
        message = _user_message(exc)
        log.warning("download of model %s failed: %s", model_pk, message)
        _release(model_pk)
        progress.finish(model_pk, ModelStatus.ERROR, error_message=message)
    finally:
        LanguageModel.objects.filter(pk=model_pk).update(encrypted_token=None)
        LanguageModel.objects.filter(pk=model_pk, status__in=ACTIVE_STATUSES).update(
            status=ModelStatus.ERROR, error_message="The job stopped unexpectedly.",
            completed_at=timezone.now())
    return outcome


def _release(model_pk: int) -> None:
    """Remove what the failed job wrote; re-read first, since the job may have resolved the
    revision to a newer commit than the one the record was created with."""
    services.release_files(LanguageModel.objects.get(pk=model_pk))


def _user_message(exc: BaseException) -> str:
    from .ml.hooks import UnsupportedArchitecture
    from .ml.loading import LoadError

    if isinstance(exc, hub.HubError):
        return exc.message
    if isinstance(exc, (LoadError, UnsupportedArchitecture)):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno == 28:
        return "The disk is full: free some space and retry."
    return f"Unexpected error ({type(exc).__name__}): {exc}"


def _should_cancel_checker(pk: int):
    import time

    last = {"t": 0.0, "value": False}

    def should_cancel() -> bool:
        now = time.monotonic()
        if now - last["t"] >= 0.3:
            last["t"], last["value"] = now, progress.is_cancel_requested(pk)
        return last["value"]

    return should_cancel


def _run_download(record: LanguageModel, token: str | None) -> None:
    pk = record.pk
    should_cancel = _should_cancel_checker(pk)
    pre = hub.preflight(record.repo_id, record.revision, token=token, endpoint=settings.HF_ENDPOINT,
                        trust_remote_code=record.trust_remote_code)
    snapshot = storage.snapshot_dir(settings.HF_CACHE_DIR, pre.repo_id, pre.commit_sha)
    missing = sum(f.size for f in pre.files if not (snapshot / f.path).exists())
    free = hub.free_disk_bytes(settings.HF_CACHE_DIR)
    if missing > free:
        raise hub.HubError(f"Not enough disk space: the download needs {_gb(missing)} and "
                           f"{_gb(free)} is free.")
    progress.phase(pk, ModelStatus.DOWNLOADING, "Starting download", commit_sha=pre.commit_sha,
                   architecture=pre.summary["model_type"], architecture_config=pre.config,
                   bytes_total=pre.download_bytes, file_path=str(snapshot))

    def on_progress(p: hub.DownloadProgress) -> None:
        progress.update(pk, **progress.download_fields(p.done, p.total, p.speed, p.eta_seconds, p.file))

    hub.download(pre, settings.HF_CACHE_DIR, token=token, endpoint=settings.HF_ENDPOINT,
                 on_progress=on_progress, should_cancel=should_cancel)
    progress.update(pk, force=True, bytes_downloaded=pre.download_bytes, progress=100.0)
    _load_and_quantize(pk, record, snapshot, pre, should_cancel)


def _load_and_quantize(pk, record, snapshot: Path, pre: hub.Preflight, should_cancel) -> None:
    from .ml import architecture, hooks, loading

    progress.phase(pk, ModelStatus.LOADING, "Reading the checkpoint", progress=0.0)
    params = loading.count_parameters_on_disk(snapshot) or pre.params_count
    points = hooks.hook_points_for_folder(snapshot, trust_remote_code=record.trust_remote_code)
    summary = architecture.summarize(pre.config, hook_points=points.templates())
    progress.update(pk, force=True, params_count=params, architecture_summary=summary,
                    memory_required_bytes=quant.estimate_memory_bytes(params, record.quantization))
    if should_cancel():
        raise Cancelled()

    fmt = record.quantization
    progress.phase(pk, ModelStatus.QUANTIZING, f"Loading in {quant.LABELS[fmt]}")
    target = services.quantized_dir_for(record, fmt)
    loaded = loading.load(snapshot, fmt, trust_remote_code=record.trust_remote_code,
                          quantized_dir=target,
                          on_attempt=lambda f: progress.update(
                              pk, force=True, phase_detail=f"Loading in {quant.LABELS[f]}"))
    if should_cancel():
        raise Cancelled()
    effective = loaded.effective_format
    stored = None
    if effective in quant.SERIALIZED_FORMATS:
        progress.update(pk, force=True, phase_detail=f"Saving the {quant.LABELS[effective]} copy")
        stored = loading.save_quantized(loaded, services.quantized_dir_for(record, effective))
    footprint, reason = loaded.footprint_bytes, loaded.fallback_reason
    del loaded
    disk = storage.snapshot_size(snapshot) + (storage.tree_size(stored) if stored else 0)
    progress.finish(pk, ModelStatus.READY, effective_quantization=effective,
                    quantization_note=reason,
                    memory_footprint_bytes=footprint, disk_size_bytes=disk,
                    quantized_path=str(stored or ""), progress=100.0)


def _gb(nbytes: int) -> str:
    return f"{nbytes / 1e9:.2f} GB"
