"""Starting, running bookkeeping and cancelling activation extractions (page and CLI)."""
from __future__ import annotations

import shutil

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import EXTRACTION_ACTIVE, Extraction, ExtractionStatus

EXTRACTION_TASK = "models_app.extraction_jobs.run_extraction"


def output_dir(record: Extraction):
    return settings.ACTIVATIONS_DIR / str(record.pk)


def create(queue: bool = True, **fields) -> Extraction:
    """`fields`: model, dataset, layers, hooks, batch_size, max_samples, context_length, top_k, dtype."""
    from django_q.tasks import async_task

    with transaction.atomic():
        record = Extraction.objects.create(**fields)
        if queue:
            transaction.on_commit(lambda: async_task(EXTRACTION_TASK, record.pk,
                                                     cluster=settings.GPU_CLUSTER,
                                                     task_name=f"extraction-{record.pk}"))
    return record


def request_cancel(record: Extraction) -> None:
    updated = Extraction.objects.filter(pk=record.pk, status=ExtractionStatus.QUEUED).update(
        status=ExtractionStatus.CANCELLED, cancel_requested=True, completed_at=timezone.now())
    if not updated:
        Extraction.objects.filter(pk=record.pk, status__in=EXTRACTION_ACTIVE).update(cancel_requested=True)
    record.refresh_from_db()


def remove_outputs(record: Extraction) -> None:
    shutil.rmtree(output_dir(record), ignore_errors=True)
