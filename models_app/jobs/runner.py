"""One runner for every job kind (download, dataset, extraction).

`run(RecordClass, pk, body)` claims the record with a conditional UPDATE, keeps its heartbeat
going from a watcher thread, gives the body one cancel check (`job.check()`), maps any exception
to the message a user reads, removes partial files of a cancelled or failed job, and leaves the
record in a final state whatever happens, KeyboardInterrupt included.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .. import progress
from ..ml.errors import Cancelled, UserError
from ..models import JOB_KINDS

log = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 0.5  # cancel is noticed within this; the job stops within 2 s
DISK_FULL = "The disk is full: free some space and retry."
STOPPED = "The job stopped unexpectedly."


def user_message(exc: BaseException) -> str:
    """The one map from an exception to what the card, the page and the CLI say."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno == 28:
        return DISK_FULL
    if isinstance(exc, MemoryError):
        return "The machine ran out of memory: try a smaller format, batch or context."
    return f"Unexpected error ({type(exc).__name__}): {exc}"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Job:
    """What a job's body gets: its record's tracker and the cancel check.

    A watcher thread reads the record every CANCEL_POLL_SECONDS (cancel asked, record deleted or
    ended by someone else) and writes the heartbeat, so a body stuck in one long library call
    still counts as alive, and `should_cancel()` is a cheap flag read the body may call often.
    Inside a caller's transaction (synchronous runs in tests) no other connection could see the
    row, so the checks run inline instead."""

    def __init__(self, record_cls: progress.JobClass, pk: int) -> None:
        self.record_cls, self.pk = record_cls, pk
        self.tracker = progress.Tracker(record_cls, pk)
        self._cancel = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_poll = self._last_beat = 0.0
        # What must never reach a message or a log line (a decrypted access token).
        self.secrets: list[str] = []

    def start(self) -> None:
        if not connection.in_atomic_block:
            self._thread = threading.Thread(target=self._watch, name=f"job-{self.pk}-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def should_cancel(self) -> bool:
        if self._thread is None and time.monotonic() - self._last_poll >= CANCEL_POLL_SECONDS:
            self._poll()
        return self._cancel.is_set()

    def check(self) -> None:
        if self.should_cancel():
            raise Cancelled()

    def _poll(self) -> None:
        self._last_poll = time.monotonic()
        row = self.record_cls.objects.filter(pk=self.pk).values_list("cancel_requested", "status").first()
        if row is None or row[0] or row[1] not in self.record_cls.ACTIVE:
            self._cancel.set()
        if time.monotonic() - self._last_beat >= settings.JOB_HEARTBEAT_SECONDS:
            self._last_beat = time.monotonic()
            self.record_cls.objects.filter(pk=self.pk, status__in=self.record_cls.ACTIVE).update(
                heartbeat_at=timezone.now()
            )

    def _watch(self) -> None:
        try:
            while not self._stop.wait(CANCEL_POLL_SECONDS):
                try:
                    self._poll()
                except Exception as exc:  # a busy database: try again next tick
                    log.warning("job %s %s: heartbeat failed: %s", self.record_cls.KIND, self.pk, exc)
        finally:
            connection.close()


def run(record_cls: progress.JobClass, pk: int, body: Callable[[Job], dict[str, Any] | None]) -> str:
    """Claim the record, run `body(job)`, and end the record as DONE (with the fields the body
    returns), CANCELLED or FAILED. Returns the final status, or "not claimed"."""
    for kind in JOB_KINDS.values():  # a worker is one of those who notice lost jobs
        kind.fail_stale()
    if not record_cls.claim(pk, worker_name()):
        return "not claimed"
    job = Job(record_cls, pk)
    job.start()
    outcome: str = record_cls.FAILED
    try:
        fields = body(job) or {}
        job.check()  # a cancel that arrived during the last step still wins
        if not job.tracker.finish(record_cls.DONE, **fields):
            raise Cancelled()  # the record was deleted or ended meanwhile: its files must go
        outcome = record_cls.DONE
    except BaseException as exc:
        outcome = _end_unfinished(job, exc)
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt / SystemExit: cleaned up, now let them through
    finally:
        job.stop()
        record = record_cls.objects.filter(pk=pk).first()
        if record is not None:
            record.on_job_ended()
            if record.is_active:  # nothing above managed to end it
                record_cls.set(
                    pk, status=record_cls.FAILED, error_message=STOPPED, completed_at=timezone.now()
                )
    return outcome


def _end_unfinished(job: Job, exc: BaseException) -> str:
    record_cls, pk = job.record_cls, job.pk
    record = record_cls.objects.filter(pk=pk).first()
    # A failure that follows a cancel or a delete (its files removed under the job) is the
    # cancel's doing, even before the watcher has seen it.
    cancelled = (
        isinstance(exc, Cancelled)
        or job.should_cancel()
        or isinstance(exc, KeyboardInterrupt)
        or record is None
        or record.cancel_requested
    )
    # A record deleted while its job ran (a dataset) still has files here: they all go.
    if record is None:
        record_cls(pk=pk).discard_partial_files()
    else:
        record.discard_unfinished_files()
    if cancelled:
        job.tracker.finish(record_cls.CANCELLED)
        return record_cls.CANCELLED
    from ..token_crypto import scrub

    message = scrub(user_message(exc), *job.secrets)
    log.warning("%s %s failed: %s", record_cls.KIND, pk, message)
    job.tracker.finish(record_cls.FAILED, error_message=message)
    return record_cls.FAILED
