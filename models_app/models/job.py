"""The base of every job's record: what the runner (models_app.jobs.runner) needs of it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from .owned import Owned

LOST_WORKER_MESSAGE = "The worker stopped unexpectedly. Retry it."


class DeletionRefused(Exception):
    """Why a record cannot be deleted, in the words the user reads where they asked."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class StillRunning(DeletionRefused):
    """A job is in the way: this record's own, or `blocking` (another record's running job,
    which the page offers to cancel)."""

    def __init__(self, message: str, blocking: JobRecord | None = None):
        super().__init__(message)
        self.blocking = blocking


class JobRecord(Owned):
    """What every background job's record shares: the runner (models_app.jobs.runner) claims it,
    beats its heartbeat while it works, and always leaves it in a final state.

    Subclasses name their statuses (QUEUED, RUNNING, ACTIVE, FAILED, CANCELLED, DONE) and say
    which files a cancelled or failed job leaves behind (`discard_unfinished_files`)."""

    # Each kind declares its own `status` with its choices; this one lets the base query by it.
    status = models.CharField(max_length=32)
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
    # What a job reports as it goes, and the value that says "nothing yet": a retried job starts
    # from a clean display, not from its last attempt's bytes, speed and ETA.
    PROGRESS_FIELDS: ClassVar[dict[str, Any]] = {}
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
        return (
            cls.objects.filter(pk=pk, status=cls.QUEUED, cancel_requested=False).update(
                status=cls.RUNNING,
                started_at=now,
                heartbeat_at=now,
                updated_at=now,
                worker=worker,
                attempts=models.F("attempts") + 1,
                error_message="",
            )
            == 1
        )

    @classmethod
    def fail_stale(cls) -> list[int]:
        """Fail running jobs whose heartbeat stopped: their worker was killed. Anyone may call
        this (pages, workers, the live watcher); the conditional UPDATE makes it safe to race.
        A cancel asked of a dead job ends it as cancelled, with its partial files removed; a
        failed one loses what its dead worker can no longer finish (`discard_lost_files`)."""
        cutoff = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS)
        candidates = cls.objects.filter(status__in=cls.running_statuses()).filter(
            models.Q(heartbeat_at__lt=cutoff) | models.Q(heartbeat_at__isnull=True, updated_at__lt=cutoff)
        )
        ended = []
        for record in candidates:
            cancelled = record.cancel_requested
            fields = (
                {"status": cls.CANCELLED}
                if cancelled
                else {"status": cls.FAILED, "error_message": LOST_WORKER_MESSAGE}
            )
            won = cls.objects.filter(
                pk=record.pk, status=record.status, heartbeat_at=record.heartbeat_at
            ).update(completed_at=timezone.now(), updated_at=timezone.now(), **fields)
            if won:
                ended.append(record.pk)
                if cancelled:
                    record.discard_unfinished_files()
                else:
                    record.discard_lost_files()
                record.on_job_ended()
        return ended

    def job_task(self) -> tuple[str, str]:
        """(the task function's dotted path, the cluster it runs on) of this record's job."""
        raise NotImplementedError

    @property
    def task_name(self) -> str:
        return f"{self.KIND}-{self.pk}"

    def enqueue(self) -> None:
        """Send the job to its queue once this row is committed (a worker must be able to read
        it). A queue that cannot take it (Redis down) fails the record at once, with the reason,
        and raises QueueUnavailable for the caller to show: no row stays queued with no task."""
        transaction.on_commit(self._send)

    def _send(self) -> None:
        from ..jobs import queue

        task, cluster = self.job_task()
        try:
            queue.send(task, self.pk, cluster, self.task_name)
        except queue.QueueUnavailable as exc:
            # Its files stay: a re-download's model is still whole, and Retry or delete decides.
            type(self).set(
                self.pk, status=self.FAILED, error_message=exc.message, completed_at=timezone.now()
            )
            self.on_job_ended()
            raise

    @classmethod
    def requeue_lost(cls) -> list[int]:
        """Queue again the jobs whose task the broker no longer holds (a Redis that restarted
        without saving, a process stopped between committing a row and queueing its task).
        Rows queued in the last JOB_STALE_SECONDS are left to the request queueing them."""
        from ..jobs import queue

        cutoff = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS)
        waiting: dict[str, set[str]] = {}
        requeued = []
        for record in cls.objects.filter(status=cls.QUEUED, cancel_requested=False, updated_at__lt=cutoff):
            task, cluster = record.job_task()
            if cluster not in waiting:
                waiting[cluster] = queue.waiting_task_names(cluster)
            if record.task_name in waiting[cluster]:
                continue
            # One process wins the row (another checking at once finds it fresh), and the row
            # waits another JOB_STALE_SECONDS before it is judged again.
            if cls.objects.filter(pk=record.pk, status=cls.QUEUED, updated_at__lt=cutoff).update(
                updated_at=timezone.now()
            ):
                queue.send(task, record.pk, cluster, record.task_name)
                requeued.append(record.pk)
        return requeued

    def request_cancel(self) -> str | None:
        """Cancel now if queued, else ask the running job to stop; the refusal message if the job
        has already finished."""
        if not self.is_active:
            return (
                f"This job has already ended ({self.get_status_display().lower()}): "  # type: ignore[attr-defined]
                "there is nothing to cancel."
            )
        type(self).objects.filter(pk=self.pk, status=self.QUEUED).update(
            status=self.CANCELLED,
            cancel_requested=True,
            completed_at=timezone.now(),
            updated_at=timezone.now(),
        )
        type(self).objects.filter(pk=self.pk, status__in=self.running_statuses()).update(
            cancel_requested=True, updated_at=timezone.now()
        )
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
        for name, value in self.PROGRESS_FIELDS.items():
            setattr(self, name, value)

    def delete_with_files(self, user=None) -> int:
        """Delete the record and every file it owns; bytes freed. `user` is who asks (None: the
        terminal, that is the operator). Raises DeletionRefused, saying why, when it may not go.
        Each kind of record keeps its own rule here, so pages, the API and the commands agree."""
        raise NotImplementedError

    def delete_record(self, user=None) -> None:
        """Delete a record whose result is on its row (a comparison, a format check), with what
        an unfinished job of it left (`discard_partial_files`). A running one is refused: the row
        goes only while not active, in one statement."""
        from .. import progress

        self.refuse_unless_changeable_by(user)
        deleted, _ = type(self).objects.filter(pk=self.pk).exclude(status__in=self.ACTIVE).delete()
        if not deleted:
            raise StillRunning(f"This {self._meta.verbose_name} is running: cancel it first.")
        self.discard_partial_files()
        progress.publish(self.KIND, self.pk, deleted=True)

    def refuse_unless_changeable_by(self, user) -> None:
        if user is not None and (refused := self.change_refusal(user)):
            raise DeletionRefused(refused)

    def discard_partial_files(self) -> int:
        """Remove everything an unfinished job wrote; bytes freed."""
        return 0

    def discard_unfinished_files(self) -> int:
        """What a cancelled or failed job leaves: its partial files go, unless a Retry continues
        from them (an extraction's checkpoint); bytes freed."""
        return self.discard_partial_files()

    def discard_lost_files(self) -> int:
        """Remove what a job whose worker died left half-written (its `.partial` files, a killed
        transfer's blobs); bytes freed. What a Retry can still use may stay."""
        return self.discard_unfinished_files()

    def on_job_ended(self) -> None:
        """Hook for a record to drop what only a running job needs (an access token)."""

    @property
    def cancel_confirmation(self) -> str:
        return "Cancel this job?"
