"""The job queue (Django-Q2's broker: Redis, or the database in the embedded default), as the
records see it: sending a job, and which jobs it still holds."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

QUEUE_DOWN = "The job queue cannot be reached, so the job was not started: try again in a moment."


class QueueUnavailable(Exception):
    """The broker could not take a job (Redis down); the message is for the user."""

    def __init__(self, message: str = QUEUE_DOWN):
        super().__init__(message)
        self.message = message


def send(task: str, pk: int, cluster: str, name: str) -> None:
    """Queue `task(pk)` on `cluster`; QueueUnavailable if the broker cannot take it."""
    from django_q.tasks import async_task

    try:
        async_task(task, pk, cluster=cluster, task_name=name)
    except Exception as exc:  # the broker's own errors: redis.ConnectionError, a locked database...
        log.warning("could not queue %s (%s): %s", name, task, exc)
        raise QueueUnavailable() from exc


def waiting_task_names(cluster: str) -> set[str]:
    """Names of the tasks the broker holds for `cluster`: waiting, or (database broker) taken
    by a cluster and not yet done. A task a cluster has taken from Redis but not yet started is
    in neither: a caller that queues a missing task again may queue such one twice, which the
    job's claim makes harmless (the second finds its record no longer queued)."""
    from django_q.brokers import get_broker
    from django_q.conf import Conf
    from django_q.models import OrmQ
    from django_q.signing import SignedPackage

    try:
        if Conf.ORM:
            return {task.name() for task in OrmQ.objects.using(Conf.ORM).filter(key=cluster)}
        broker = get_broker(list_key=cluster)
        return {
            SignedPackage.loads(payload).get("name")
            for payload in broker.connection.lrange(broker.list_key, 0, -1)
        }
    except Exception as exc:  # Redis down: nothing can be known, or queued again, now
        raise QueueUnavailable() from exc
