"""Starting and retrying activation extractions (pages and CLI); folders found on disk are found.py's."""

from __future__ import annotations

from django.db import transaction

from ..models import Extraction
from . import found


def create(queue: bool = True, **fields) -> Extraction:
    """`fields`: model, dataset, layers, hooks, batch_size, max_samples, context_length, top_k, dtype,
    and owner (who asked for it; None from the terminal)."""
    record = Extraction.objects.create(**fields)
    found.move_aside(record.output_dir)
    if queue:
        record.enqueue()
    return record


def retry(record: Extraction, queue: bool = True) -> Extraction:
    """Run it again: from the checkpoint its folder holds (the job continues from there), else
    from nothing, the files of the attempt that failed gone first."""
    record.discard_unfinished_files()
    with transaction.atomic():
        record.prepare_retry()
        record.save()
        if queue:
            record.enqueue()
    return record
