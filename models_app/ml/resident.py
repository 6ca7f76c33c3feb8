"""Loaded models kept in memory between jobs, least recently used released first, bounded in bytes.

Loading is most of what a job waits for before its first result: a worker that keeps the models
it used (in RAM, or on its GPU) starts the next job on one of them at once. Each entry is stored
under a key (what was asked for: model, format, device, options) with an identity (what the
model was built from: its files as they are on disk, and whatever the caller adds); an entry
whose identity no longer matches is released, never handed out. Django-free: the worker side
(models_app/jobs/resident.py) says what a key and an identity are.

    cache = ResidentModels(budget_bytes=4 << 30)
    loaded = cache.get(key, identity) or load()   # a hit becomes the most recently used
    hooks = count_hooks(loaded.model)
    ...use it...
    cache.put(key, identity, loaded, loaded.footprint_bytes, loaded.model, hooks)
"""

from __future__ import annotations

import gc
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)  # what a caller keys its models by


@dataclass
class Entry:
    value: Any
    identity: Hashable
    nbytes: int


class ResidentModels(Generic[K]):
    """A thread-safe LRU of loaded models whose footprints add up to at most `budget_bytes`
    (0: keep nothing). An entry released here is only dropped from the cache: its memory goes
    once no job holds the model either, and `release_memory` hands it back to the device."""

    def __init__(self, budget_bytes: int = 0) -> None:
        self._entries: OrderedDict[K, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.budget_bytes = max(int(budget_bytes), 0)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(entry.nbytes for entry in self._entries.values())

    def snapshot(self) -> list[tuple[K, Hashable]]:
        """(key, identity) of every entry, least recently used first."""
        with self._lock:
            return [(key, entry.identity) for key, entry in self._entries.items()]

    def get(self, key: K, identity: Hashable) -> Any | None:
        """The key's model if it was built from `identity` (it becomes the most recently used);
        one built from anything else is released, never handed out."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.identity == identity:
                self._entries.move_to_end(key)
                return entry.value
        if entry is not None:
            self.discard(key)
        return None

    def put(self, key: K, identity: Hashable, value: Any, nbytes: int, model: Any, hooks_before: int) -> bool:
        """Keep `value` (whose model is `model`) after a use that began with `hooks_before`
        hooks on it (count_hooks). Refused, and the key's older entry released, when the use
        left a hook behind or the model in training mode, or when it alone exceeds the budget;
        the least recently used others are released to make room."""
        clean = count_hooks(model) == hooks_before and not getattr(model, "training", False)
        with self._lock:
            old = self._entries.pop(key, None)
            # The caller still holds `value`: only other models' memory can be given back now.
            dropped = [old] if old is not None and old.value is not value else []
            keep = clean and int(nbytes) <= self.budget_bytes
            if keep:
                self._entries[key] = Entry(value, identity, int(nbytes))
                dropped += self._evict(self.budget_bytes, keep={key})
        if dropped:
            del dropped
            release_memory()
        return keep

    def discard(self, key: K) -> bool:
        """Release the key's entry (a use that failed: its state is not to be trusted)."""
        return bool(self.discard_where(lambda k, _identity: k == key))

    def discard_where(self, stale: Callable[[K, Hashable], bool]) -> list[K]:
        """Release every entry for which `stale(key, identity)` is true; the keys released."""
        with self._lock:
            keys = [key for key, entry in self._entries.items() if stale(key, entry.identity)]
            dropped = [self._entries.pop(key) for key in keys]
        if dropped:
            del dropped
            release_memory()
        return keys

    def make_room(self, nbytes: int, keep: Iterable[K] = ()) -> None:
        """Release least recently used entries (not `keep`) until `nbytes` more fit the budget,
        before a load: a new model must not run out of memory because of old ones."""
        with self._lock:
            dropped = self._evict(max(self.budget_bytes - max(int(nbytes), 0), 0), keep=set(keep))
        if dropped:
            del dropped
            release_memory()

    def clear(self) -> None:
        self.discard_where(lambda _key, _identity: True)

    def _evict(self, limit: int, keep: set[K]) -> list[Entry]:
        evicted = []
        total = sum(entry.nbytes for entry in self._entries.values())
        for key in list(self._entries):  # least recently used first
            if total <= limit:
                break
            if key not in keep:
                entry = self._entries.pop(key)
                total -= entry.nbytes
                evicted.append(entry)
        return evicted


def count_hooks(model: Any) -> int:
    """Forward and backward hooks registered on the model's modules. The extraction engine adds
    its hooks inside a context manager that removes them; loaders (accelerate) may add their own,
    which is why the count is compared, not required to be zero."""
    modules = model.modules() if hasattr(model, "modules") else ()
    return sum(
        len(getattr(module, name, ()))
        for module in modules
        for name in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    )


def files_identity(*folders: str | os.PathLike | None) -> tuple:
    """What the files under `folders` are right now: name, size, modification time and inode of
    each (following links, as the Hub cache's snapshot links point at its blobs). A re-download
    or a rewritten quantized copy changes it, even at the same commit."""
    found: list[tuple[str, None] | tuple[str, int, int, int, int]] = []
    for folder in folders:
        if not folder:
            continue
        root = Path(folder)
        for path in sorted(root.rglob("*")):
            try:
                stat = path.stat()
            except OSError:  # a link whose blob went: that is a change too
                found.append((str(path), None))
                continue
            if path.is_file():
                found.append(
                    (str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev)
                )
    return tuple(found)


def default_budget(device: str) -> int:
    """Half of the GPU's memory on a GPU worker, a quarter of the machine's memory otherwise:
    room for the models a researcher switches between, with the rest left for the job itself."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory // 2)
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4)
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): a modest fixed share
        return 2 << 30


def release_memory() -> None:
    """Give released models' memory back: a loaded model holds reference cycles, and PyTorch
    keeps freed GPU memory reserved for this process until asked."""
    gc.collect()
    import sys

    torch = sys.modules.get("torch")  # nothing to return to a GPU that torch never used here
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
