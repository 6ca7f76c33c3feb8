"""The base of every job's record: what the runner (models_app.jobs.runner) needs of it."""
from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from .owned import Owned

LOST_WORKER_MESSAGE = "The worker stopped unexpectedly. Retry it."


class JobRecord(Owned):
    """What every background job's record shares: the runner (models_app.jobs.runner) claims it,
    beats its heartbeat while it works, and always leaves it in a final state.

    Subclasses name their statuses (QUEUED, RUNNING, ACTIVE, FAILED, CANCELLED, DONE) and say
    which files a cancelled or failed job leaves behind (`discard_partial_files`)."""

    cancel_requested = models.BooleanField(default=False)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="How many times a worker started it")
    last_error = models.TextField(blank=True, help_text="The previous attempt's error, kept on retry")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the running job")
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)  # lists sort by it

    KIND: ClassVar[str]
    QUEUED: ClassVar[str]
    RUNNING: ClassVar[str]  # the first phase a claimed job enters
    ACTIVE: ClassVar[tuple[str, ...]]
    DONE: ClassVar[str]
    FAILED: ClassVar[str]
    CANCELLED: ClassVar[str]

    class Meta(Owned.Meta):
        abstract = True
        ordering = ["-created_at", "-pk"]

    def save(self, *args, **kwargs) -> None:
        self.updated_at = timezone.now()  # the live watcher finds changed rows by this column
        super().save(*args, **kwargs)

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @classmethod
    def running_statuses(cls) -> tuple[str, ...]:
        return tuple(s for s in cls.ACTIVE if s != cls.QUEUED)

    @classmethod
    def set(cls, pk: int, **fields: Any) -> int:
        """An UPDATE that also stamps updated_at, so open pages hear of it."""
        return cls.objects.filter(pk=pk).update(updated_at=timezone.now(), **fields)

    @classmethod
    def claim(cls, pk: int, worker: str = "") -> bool:
        """Queued -> first running phase, atomically: False when another worker has it or it was
        cancelled while it waited."""
        now = timezone.now()
        return cls.objects.filter(pk=pk, status=cls.QUEUED, cancel_requested=False).update(
            status=cls.RUNNING, started_at=now, heartbeat_at=now, updated_at=now, worker=worker,
            attempts=models.F("attempts") + 1, error_message="") == 1

    @classmethod
    def fail_stale(cls) -> list[int]:
        """Fail running jobs whose heartbeat stopped: their worker was killed. Anyone may call
        this (pages, workers, the live watcher); the conditional UPDATE makes it safe to race.
        A cancel asked of a dead job ends it as cancelled, with its partial files removed."""
        cutoff = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS)
        candidates = cls.objects.filter(status__in=cls.running_statuses()).filter(
            models.Q(heartbeat_at__lt=cutoff) | models.Q(heartbeat_at__isnull=True, updated_at__lt=cutoff))
        ended = []
        for record in candidates:
            cancelled = record.cancel_requested
            fields = {"status": cls.CANCELLED} if cancelled else {
                "status": cls.FAILED, "error_message": LOST_WORKER_MESSAGE}
            won = cls.objects.filter(pk=record.pk, status=record.status, heartbeat_at=record.heartbeat_at) \
                .update(completed_at=timezone.now(), updated_at=timezone.now(), **fields)
            if won:
                ended.append(record.pk)
                if cancelled:
                    record.discard_partial_files()
                record.on_job_ended()
        return ended

    def request_cancel(self) -> str | None:
        """Cancel now if queued, else ask the running job to stop; the refusal message if the job
        has already finished."""
        if not self.is_active:
            return (f"This job has already ended ({self.get_status_display().lower()}): "
                    "there is nothing to cancel.")
        type(self).objects.filter(pk=self.pk, status=self.QUEUED).update(
            status=self.CANCELLED, cancel_requested=True, completed_at=timezone.now(),
            updated_at=timezone.now())
        type(self).objects.filter(pk=self.pk, status__in=self.running_statuses()).update(
            cancel_requested=True, updated_at=timezone.now())
        self.refresh_from_db()
        if self.status == self.CANCELLED:
            self.on_job_ended()
        return None

    def prepare_retry(self) -> None:
        """Back to the queue, keeping the history: attempts count on, the last error stays."""
        if self.error_message:
            self.last_error = self.error_message
        self.status = self.QUEUED
        self.cancel_requested = False
        self.error_message = ""
        self.heartbeat_at = self.started_at = self.completed_at = None
        self.worker = ""

    def discard_partial_files(self) -> int:
        """Remove what an unfinished job wrote; bytes freed."""
        return 0

    def on_job_ended(self) -> None:
        """Hook for a record to drop what only a running job needs (an access token)."""

    @property
    def cancel_confirmation(self) -> str:
        return "Cancel this job?"

