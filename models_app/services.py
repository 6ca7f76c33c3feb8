"""Small service functions behind the views and the manage.py commands."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import transaction

from . import secrets
from .ml import hub, storage
from .models import ACTIVE_STATUSES, LanguageModel, ModelStatus

DOWNLOAD_TASK = "models_app.jobs.download_model"


def quantized_dir_for(record: LanguageModel, fmt: str | None = None) -> Path:
    return settings.QUANTIZED_DIR / f"{record.pk}_{fmt or record.quantization}"


def enqueue_download(record: LanguageModel) -> None:
    """Queue the job once the record is committed (the worker must be able to read it)."""
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(DOWNLOAD_TASK, record.pk,
                                             cluster=settings.DOWNLOAD_CLUSTER,
                                             task_name=f"download-model-{record.pk}"))


def create_download(pre: hub.Preflight, fmt: str, token: str | None,
                    trust_remote_code: bool = False, name: str = "", queue: bool = True) -> LanguageModel:
    """Create the queued record; `queue=False` when the caller runs the job itself (the CLI)."""
    with transaction.atomic():
        record = LanguageModel.objects.create(
            name=name or pre.repo_id.split("/")[-1], repo_id=pre.repo_id, revision=pre.revision,
            commit_sha=pre.commit_sha, architecture=pre.summary.get("model_type", ""),
            params_count=pre.params_count, quantization=fmt, trust_remote_code=trust_remote_code,
            gated=pre.gated,
            architecture_config=pre.config, architecture_summary=pre.summary,
            memory_required_bytes=pre.memory_by_format[fmt], bytes_total=pre.download_bytes,
            encrypted_token=secrets.encrypt(token) if token else None,
            phase_log=[{"status": ModelStatus.QUEUED, "at": None, "detail": ""}],
        )
        if queue:
            enqueue_download(record)
    return record


def restart(record: LanguageModel, fmt: str, token: str | None = None) -> LanguageModel:
    """Retry, or re-download in another format: the same record goes back to the queue."""
    with transaction.atomic():
        if fmt != record.quantization:
            release_quantized(record)
        record.quantization = fmt
        record.status = ModelStatus.QUEUED
        record.cancel_requested = False
        record.progress = 0.0
        record.error_message = record.quantization_note = record.phase_detail = ""
        record.effective_quantization = ""
        record.memory_footprint_bytes = None
        record.memory_required_bytes = record.estimated_memory_by_format.get(fmt)
        record.completed_at = None
        record.phase_log = [{"status": ModelStatus.QUEUED, "at": None, "detail": ""}]
        if token:
            record.encrypted_token = secrets.encrypt(token)
        record.save()
        enqueue_download(record)
    return record


def request_cancel(record: LanguageModel) -> None:
    """A queued job is cancelled at once; a running one stops at its next progress check."""
    updated = LanguageModel.objects.filter(pk=record.pk, status=ModelStatus.QUEUED).update(
        status=ModelStatus.CANCELLED, cancel_requested=True, encrypted_token=None)
    if not updated:
        LanguageModel.objects.filter(pk=record.pk, status__in=ACTIVE_STATUSES).update(
            cancel_requested=True)
    record.refresh_from_db()


def commits_in_use(repo_id: str, exclude_pk: int | None = None) -> set[str]:
    others = LanguageModel.objects.filter(repo_id=repo_id).exclude(pk=exclude_pk)
    return set(others.exclude(commit_sha="").values_list("commit_sha", flat=True))


def release_quantized(record: LanguageModel) -> int:
    freed = 0
    for fmt_dir in settings.QUANTIZED_DIR.glob(f"{record.pk}_*"):
        freed += storage.remove_tree(fmt_dir)
    return freed


def release_files(record: LanguageModel) -> int:
    """Remove the record's quantized copies and every cache file no other model uses."""
    freed = release_quantized(record)
    if record.commit_sha:
        freed += storage.remove_snapshot(settings.HF_CACHE_DIR, record.repo_id, record.commit_sha,
                                         commits_in_use(record.repo_id, exclude_pk=record.pk))
    return freed


def fail_interrupted_jobs() -> int:
    """Jobs left mid-phase by a stopped worker (the studio was killed) can never finish: say so.
    Queued jobs stay queued; the broker still holds their tasks."""
    from django.utils import timezone

    running = [s for s in ACTIVE_STATUSES if s != ModelStatus.QUEUED]
    return LanguageModel.objects.filter(status__in=running).update(
        status=ModelStatus.ERROR, encrypted_token=None, completed_at=timezone.now(),
        error_message="The studio stopped while this job was running. Retry it.")


class StillRunning(Exception):
    pass


def delete(record: LanguageModel) -> int:
    """Delete the row, its files and its extractions' files; returns bytes freed. Running jobs
    (the download, or an extraction of this model) must be cancelled first."""
    if record.is_active:
        raise StillRunning(f"{record.name} is {record.get_status_display().lower()}: cancel it first.")
    if any(x.is_active for x in record.extractions.all()):
        raise StillRunning(f"An extraction of {record.name} is running: cancel it first.")
    freed = release_files(record)
    for extraction in record.extractions.all():  # its activations go with it
        freed += storage.remove_tree(settings.ACTIVATIONS_DIR / str(extraction.pk))
    record.delete()
    return freed
