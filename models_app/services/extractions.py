"""Starting, retrying, deleting and importing activation extractions (pages and CLI)."""
from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..ml.storage import disk_usage
from ..models import Dataset, Extraction, ExtractionStatus, LanguageModel

EXTRACTION_TASK = "models_app.jobs.extraction.run_extraction"


def _enqueue(record: Extraction) -> None:
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(EXTRACTION_TASK, record.pk, cluster=settings.GPU_CLUSTER,
                                             task_name=f"extraction-{record.pk}"))


def create(queue: bool = True, **fields) -> Extraction:
    """`fields`: model, dataset, layers, hooks, batch_size, max_samples, context_length, top_k, dtype,
    and owner (who asked for it; None from the terminal)."""
    record = Extraction.objects.create(**fields)
    _move_aside(record.output_dir)
    if queue:
        _enqueue(record)
    return record


def _move_aside(folder: Path) -> None:
    """A folder already at a new record's path belongs to no record (a copied or restored data
    directory): keep it, under a name that stays listed for import, rather than mix files."""
    if folder.exists():
        os.replace(folder, folder.with_name(f"{folder.name}-found-{int(time.time())}"))


def retry(record: Extraction) -> Extraction:
    """Start again from nothing: the files of the attempt that failed go first."""
    record.discard_partial_files()
    with transaction.atomic():
        record.prepare_retry()
        record.save()
        _enqueue(record)
    return record


@dataclass
class FoundFolder:
    """A folder under ACTIVATIONS_DIR with a complete metadata.json and no record."""
    name: str
    metadata: dict

    @property
    def model_repo(self) -> str:
        return (self.metadata.get("model") or {}).get("repo_id", "")

    @property
    def dataset_name(self) -> str:
        return (self.metadata.get("dataset") or {}).get("name", "")

    @property
    def settings(self) -> dict:
        return self.metadata.get("settings") or {}


def found_folders() -> list[FoundFolder]:
    root = Path(settings.ACTIVATIONS_DIR)
    if not root.is_dir():
        return []
    folders = [f for f in sorted(root.iterdir())
               if f.is_dir() and not f.is_symlink() and not f.name.startswith(".")]
    # Only the folders' own names are looked up (the list page runs this on every view).
    numbers = [int(f.name) for f in folders if f.name.isdigit()]
    known = {str(pk) for pk in Extraction.objects.filter(pk__in=numbers).values_list("pk", flat=True)}
    found = []
    for folder in folders:
        if folder.name in known:
            continue
        metadata = _read_metadata(folder)
        if metadata is not None:
            found.append(FoundFolder(folder.name, metadata))
    return found


def _read_metadata(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / "metadata.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not data.get("complete") or not isinstance(data.get("statistics"), dict):
        return None
    return data


class ImportRefused(Exception):
    pass


def import_folder(name: str, model: LanguageModel, dataset: Dataset, owner=None) -> Extraction:
    """Make a found folder a completed record of `model` on `dataset`: the folder moves to the
    new record's path, its metadata.json is kept as it is.

    The folder is first renamed to a staging name, so that it is claimed by this import alone
    (a second import of the same folder finds nothing) and the new record's path, which may be
    this very folder's name, is free to receive it."""
    root = Path(settings.ACTIVATIONS_DIR)
    match = next((f for f in found_folders() if f.name == name), None)
    if match is None:
        raise ImportRefused(f"No importable folder named {name!r}: it is gone or already has a record.")
    staging = root / f".importing-{uuid.uuid4().hex}"
    try:
        os.replace(root / name, staging)
    except OSError as exc:
        raise ImportRefused(f"Could not import {name}: {exc.strerror}.") from exc
    try:
        record = Extraction.objects.create(**_record_fields(match.metadata), model=model, dataset=dataset,
                                               owner=owner)
    except BaseException:
        os.replace(staging, root / name)
        raise
    _move_aside(record.output_dir)
    os.replace(staging, record.output_dir)
    Extraction.set(record.pk, size_bytes=disk_usage(record.output_dir))
    record.refresh_from_db()
    return record


def _record_fields(meta: dict) -> dict:
    """A completed record's fields from an extraction's metadata.json."""
    options, timings = meta.get("settings") or {}, meta.get("timings") or {}
    started = timings.get("started")
    started_at = datetime.fromtimestamp(started, tz=dt_timezone.utc) if isinstance(started, (int, float)) else None
    seconds = timings.get("seconds")
    completed_at = (started_at + timedelta(seconds=seconds) if started_at and isinstance(seconds, (int, float))
                    else timezone.now())
    return {"layers": options.get("layers") or [], "hooks": options.get("hooks") or [],
            "batch_size": options.get("batch_size") or 8, "micro_batch_size": options.get("micro_batch_size"),
            "max_samples": options.get("max_samples"),
            "context_length": meta.get("context_length") or options.get("context_length") or 128,
            "top_k": options.get("top_k") or 10, "dtype": meta.get("dtype") or "float16",
            "status": ExtractionStatus.COMPLETED, "progress": 100.0,
            "samples_done": meta.get("samples") or 0, "samples_total": meta.get("samples") or 0,
            "tokens_per_second": timings.get("tokens_per_second") or 0.0, "metadata": meta,
            "started_at": started_at, "completed_at": completed_at}
