"""Jobs whose worker is gone, of every kind: failed when their heartbeat stopped, queued again
when the broker lost them, and failed at the start of an embedded studio that stopped mid-job.
Anyone who looks at jobs notices (a page render, the live watcher, a worker, a delete)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from django.utils import timezone

from ..models import JOB_KINDS
from ..progress import JobClass
from .queue import QueueUnavailable


def check_lost_jobs() -> int:
    """Every job kind whose heartbeat stopped is failed (see JobRecord.fail_stale), and queued
    jobs the broker lost are queued again (JobRecord.requeue_lost) while it can be reached."""
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
    # JOB_KINDS holds exactly the JobClass kinds; it is typed by their abstract base, which
    # declares no `status` to filter on.
    for kind in cast("Iterable[JobClass]", JOB_KINDS.values()):
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
