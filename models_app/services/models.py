"""Removing models and recovering jobs that lost their worker."""

from __future__ import annotations

from django.utils import timezone

from ..models import JOB_KINDS, LanguageModel


class StillRunning(Exception):
    def __init__(self, message: str, extraction=None):
        super().__init__(message)
        self.extraction = extraction


def check_lost_jobs() -> int:
    """Every job kind whose heartbeat stopped is failed (see JobRecord.fail_stale), and queued
    jobs the broker lost are queued again (JobRecord.requeue_lost) while it can be reached."""
    from ..jobs.queue import QueueUnavailable

    for kind in JOB_KINDS.values():
        try:
            kind.requeue_lost()
        except QueueUnavailable:
            break  # the queue is down: nothing can be queued again now
    return sum(len(kind.fail_stale()) for kind in JOB_KINDS.values())


def fail_interrupted_jobs() -> int:
    """At the start of an embedded studio nothing can still be running: jobs left mid-phase by
    a stopped studio can never finish, so say so at once. Queued jobs stay queued; the broker
    still holds their tasks."""
    ended = 0
    for kind in JOB_KINDS.values():
        for record in kind.objects.filter(status__in=kind.running_statuses()):
            won = kind.objects.filter(pk=record.pk, status=record.status).update(
                status=kind.FAILED,
                completed_at=timezone.now(),
                updated_at=timezone.now(),
                error_message="The studio stopped while this job was running. Retry it.",
            )
            if won:
                record.discard_lost_files()
            ended += won
            record.on_job_ended()
    return ended


class OthersDependOnIt(Exception):
    """Other users' extractions of a model: its owner may not delete them with it."""


def delete(record: LanguageModel, user=None) -> int:
    """Delete the row, its files and its extractions' files; returns bytes freed. Running jobs
    (the download, or an extraction of this model) must be cancelled first. `user` (None: the
    terminal, the operator) deletes other users' extractions with it only if staff."""
    check_lost_jobs()  # a job no process runs any more does not block the delete
    record.refresh_from_db()
    if user is not None and not user.is_staff:
        others = record.extractions.exclude(owner_id=user.pk).count()
        if others:
            raise OthersDependOnIt(
                f"{others} extraction{'s' if others > 1 else ''} of other users "
                f"use{'' if others > 1 else 's'} {record.name}: staff can delete it with them."
            )
    if record.is_active:
        raise StillRunning(f"{record.name} is {record.get_status_display().lower()}: cancel it first.")
    running = record.running_extractions.first()
    if running is not None:
        raise StillRunning(
            f"Extraction {running.pk} of {record.name} is running: cancel it first.", extraction=running
        )
    freed = record.release_files()
    for extraction in record.extractions.all():  # its activations go with it
        freed += extraction.discard_partial_files()
    record.delete()
    return freed
