"""The models an extraction worker keeps loaded between its jobs (models_app/ml/resident.py).

A second extraction of the same model in the same worker starts on the model already in memory
instead of loading it again. An entry is keyed by the model record, its format, the device and
the load options, and holds the identity it was built from: the record's download (commit,
paths, formats, when it became ready) and its files as they are on disk. Before each reuse the
identity is compared again, and a watcher thread compares it every WATCH_SECONDS, so a model
deleted or downloaded again from another process (the web server, a command) is released within
seconds and never used after its files changed.

Only worker processes keep models (`enable` runs in their warm-up, models_app/jobs/warmup.py):
the terminal commands and synchronous runs load for each job as before. The budget is
MISTUDIO_WORKER_MODEL_CACHE_BYTES (settings.WORKER_MODEL_CACHE_BYTES), 0 to keep none.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import connection

from ..ml.errors import Cancelled
from ..ml.resident import ResidentModels, count_hooks, files_identity
from ..models import LanguageModel, ModelStatus

log = logging.getLogger(__name__)

WATCH_SECONDS = 2.0  # how soon a deleted or re-downloaded model's memory is released

# (model id, format, device, trust_remote_code): what a kept model was loaded as
ModelKey = tuple[int, str, str, bool]

models: ResidentModels[ModelKey] = ResidentModels(0)  # keeps nothing until `enable`
_watcher: threading.Thread | None = None


def enable(budget_bytes: int | None = None, watch: bool = True) -> int:
    """Keep models in this process from now on, up to `budget_bytes` (default: the setting, or
    ml.resident.default_budget for this machine's device); returns the budget."""
    global _watcher
    from ..ml import loading, resident

    if budget_bytes is None:
        budget_bytes = settings.WORKER_MODEL_CACHE_BYTES
    if budget_bytes is None:
        budget_bytes = resident.default_budget(loading.default_device())
    models.budget_bytes = max(int(budget_bytes), 0)
    if models.budget_bytes and watch and _watcher is None:
        _watcher = threading.Thread(target=_watch, name="resident-models-watch", daemon=True)
        _watcher.start()
    return models.budget_bytes


def disable() -> None:
    models.budget_bytes = 0
    models.clear()


@contextmanager
def loaded_model(
    record: LanguageModel, fmt: str, device: str, load: Callable[[], Any]
) -> Iterator[tuple[Any, bool]]:
    """(the LoadedModel, whether it came from this worker's memory) for one job's use. After a
    use that ended well or was cancelled, the model stays for the next job if it is as it was
    handed out (no hook left on it); after any other failure it is released."""
    if not models.budget_bytes:
        yield load(), False
        return
    key: ModelKey = (record.pk, fmt, device, record.trust_remote_code)
    identity = _identity(record)
    loaded = models.get(key, identity)
    from_memory = loaded is not None
    if device.startswith("cuda"):
        # A GPU's memory is the job's: the model it uses shares it with no other kept model.
        models.discard_where(lambda k, _identity: k != key and k[2] == device)
    elif not from_memory:
        models.make_room(record.memory_footprint_bytes or 0, keep=[key])
    if loaded is not None:  # from memory
        log.info("model %s (%s, %s) reused from this worker's memory", record.pk, fmt, device)
    else:
        started = time.perf_counter()
        loaded = load()
        log.info("model %s (%s, %s) loaded in %.1f s", record.pk, fmt, device, time.perf_counter() - started)
    hooks = count_hooks(loaded.model)
    try:
        yield loaded, from_memory
    except BaseException as exc:
        if isinstance(exc, Cancelled):
            models.put(key, identity, loaded, loaded.footprint_bytes, loaded.model, hooks)
        else:
            models.discard(key)  # an error mid-use: whatever state it left is not to be trusted
        raise
    models.put(key, identity, loaded, loaded.footprint_bytes, loaded.model, hooks)


def forget_stale() -> list[tuple[int, str]]:
    """Release every kept model whose record was deleted or whose download or files changed;
    (model id, why) for each."""
    kept = models.snapshot()
    if not kept:
        return []
    records = LanguageModel.objects.in_bulk({key[0] for key, _identity in kept})
    released: list[tuple[int, str]] = []

    def stale(key: ModelKey, identity: Hashable) -> bool:
        record = records.get(key[0])
        why = (
            "the model was deleted"
            if record is None
            else "the model is being downloaded again"
            if record.status != ModelStatus.READY
            else "the model's download or files changed"
            if _identity(record) != identity
            else ""
        )
        if why:
            released.append((key[0], why))
        return bool(why)

    models.discard_where(stale)
    for pk, why in released:
        log.info("model %s released from this worker's memory: %s", pk, why)
    return released


def _identity(record: LanguageModel) -> tuple:
    download = (
        record.status,
        record.commit_sha,
        record.file_path,
        record.quantized_path,
        record.quantization,
        record.effective_quantization,
        record.completed_at,
    )
    return download, files_identity(record.file_path, record.quantized_path)


def _watch() -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        if not len(models):
            continue
        try:
            forget_stale()
        except Exception as exc:  # a busy database: look again next time
            log.warning("could not check the models kept in memory: %s", exc)
        finally:
            connection.close()
