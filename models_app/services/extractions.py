"""Starting, retrying and cancelling activation extractions (page and CLI)."""
from __future__ import annotations

from django.conf import settings
from django.db import transaction

from ..models import Extraction

EXTRACTION_TASK = "models_app.jobs.extraction.run_extraction"


def _enqueue(record: Extraction) -> None:
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(EXTRACTION_TASK, record.pk, cluster=settings.GPU_CLUSTER,
                                             task_name=f"extraction-{record.pk}"))


def create(queue: bool = True, **fields) -> Extraction:
    """`fields`: model, dataset, layers, hooks, batch_size, max_samples, context_length, top_k, dtype."""
    with transaction.atomic():
        record = Extraction.objects.create(**fields)
        if queue:
            _enqueue(record)
    return record


def retry(record: Extraction) -> Extraction:
    """Start again from nothing: the files of the attempt that failed go first."""
    record.discard_partial_files()
    with transaction.atomic():
        record.prepare_retry()
        record.save()
        _enqueue(record)
    return record
