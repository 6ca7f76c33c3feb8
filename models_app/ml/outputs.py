"""The extraction's files: preallocated .npy arrays (readers can np.load(..., mmap_mode="r")
them) written under a temporary name and renamed only when complete.

Only real tokens are written. Each row of a [samples, context, ...] file gets its first `length`
positions; the padding after them is never written, so it stays a hole in the file that reads as
zero and takes no disk space: disk use follows the real tokens, while the shape stays the one
users know. Rows are written with positioned writes rather than through a writable memmap, whose
dirtied pages would count in the process's resident memory and grow with the samples.

An unfinished extraction's `.partial` files can be opened again (`resume=True`) so that a resumed
run writes the rows it has not yet written into them (ml/checkpoint.py).

On a GPU, writes run on a writer thread behind a bounded queue (`submit`), so the forward pass
of the next batch overlaps the file writes of this one while memory stays bounded (the queue's
depth); activations reach the host through pinned buffers copied with non_blocking=True, and the
writer waits for each copy's event, so the copy overlaps the next forward pass too. On the CPU
the engine writes a batch itself (`write_here`), on one of torch's threads while the other counts
it (ml/team.py): the forward pass has both cores, and a writer thread would only take one of them.
A checkpoint makes the rows written so far durable on a third thread: an fsync can take a second
or more, and meanwhile the next batches are written (and the forward passes go on).
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

PARTIAL = ".partial"
QUEUE_DEPTH = 3  # batches waiting to be written
STAGING_SLOTS = 3  # pinned host buffers for batches in flight on a GPU


class NotResumable(Exception):
    """The `.partial` files are not those of this run (missing, another shape or dtype)."""


class Outputs:
    def __init__(self, folder: Path, files: dict[str, tuple[Any, tuple[int, ...]]], *, resume: bool = False):
        """`files`: name -> (numpy dtype, full shape). `resume`: open the `.partial` files an
        earlier run left, which must have exactly these shapes (else NotResumable)."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, tuple[Any, int, int]] = {}  # name -> (handle, data offset, row bytes)
        try:
            for name, (dtype, shape) in files.items():
                (self._reopen if resume else self._create)(name, dtype, shape)
        except BaseException:
            self._close_files()
            raise
        self.bytes_written = 0
        self._written_here = False  # rows written by write_here rather than the writer thread
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
        # One checkpoint waits while one is synced: a disk slower than the checkpoints come makes
        # the writer wait, rather than checkpoints pile up.
        self._syncs: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._drain, name="activation-writer", daemon=True),
            threading.Thread(target=self._sync_checkpoints, name="activation-syncer", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _create(self, name: str, dtype: Any, shape: tuple[int, ...]) -> None:
        path = self.folder / (name + PARTIAL)
        header = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        offset, row_bytes = header.offset, header[0].nbytes if shape[0] else 0
        del header  # the file now has its header and full size, all of it a hole
        # Kept open for the whole extraction (the rows land in it); close() ends it.
        self.files[name] = (open(path, "r+b", buffering=0), offset, row_bytes)  # noqa: SIM115

    def _reopen(self, name: str, dtype: Any, shape: tuple[int, ...]) -> None:
        path = self.folder / (name + PARTIAL)
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise NotResumable(f"{path.name}: {exc}") from exc
        offset = array.offset
        matches = array.shape == shape and array.dtype == np.dtype(dtype) and not array.dtype.hasobject
        row_bytes = array[0].nbytes if shape[0] else 0
        del array
        if not matches or path.stat().st_size != offset + row_bytes * shape[0]:
            raise NotResumable(f"{path.name} is not this extraction's array")
        self.files[name] = (open(path, "r+b", buffering=0), offset, row_bytes)  # noqa: SIM115

    def checkpoint(self, save: Callable[[int], None]) -> None:
        """Queue a checkpoint after the rows submitted (or written here) so far: once the writer
        has written them, the syncing thread makes them durable and then calls save(bytes
        written by then). Rows of later batches may be synced with them; a checkpoint never
        claims those."""
        if self._written_here:
            # Every row so far is written already, and the next batches' rows may be written
            # before the writer thread gets to this: their bytes are not the checkpoint's.
            written = self.bytes_written
            self.submit(lambda: self._syncs.put((written, save)))
        else:
            self.submit(lambda: self._syncs.put((self.bytes_written, save)))

    def submit(self, job: Callable[[], None], cleanup: Callable[[], None] = lambda: None) -> None:
        """Queue `job` (a closure calling write_rows) for the writer, and `cleanup` to run after
        it whatever happens (also when the job is skipped after an earlier error); blocks while
        the queue is full. An error of an earlier job is raised here."""
        self._raise_if_failed()
        self._queue.put((job, cleanup))

    def write_here(self, job: Callable[[], None], cleanup: Callable[[], None] = lambda: None) -> None:
        """`submit`, but run on the calling thread, now: on the CPU the engine writes a batch
        while it counts it, on torch's own threads (ml/team.py). A checkpoint queued after it
        covers its rows."""
        self._raise_if_failed()
        self._written_here = True
        try:
            job()
        finally:
            cleanup()

    def write_rows(self, name: str, rows: list[int], lengths: list[int], values: np.ndarray) -> None:
        """`values`: the real tokens of rows `rows`, packed in that order ([sum(lengths), ...]);
        each row's lengths[i] tokens go to the start of row rows[i] of file `name` (in a job
        of `submit` or `write_here`)."""
        handle, offset, row_bytes = self.files[name]
        start = 0
        for row, length in zip(rows, lengths, strict=True):
            if length:
                chunk = np.ascontiguousarray(values[start : start + length]).data.cast("B")
                at = offset + row * row_bytes
                while chunk:  # positioned writes: the syncing thread shares the files
                    done = os.pwrite(handle.fileno(), chunk, at)
                    chunk, at = chunk[done:], at + done
                    self.bytes_written += done
                start += length

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, cleanup = item
            try:
                if self._error is None:
                    job()
            except BaseException as exc:  # raised in the extraction's thread
                self._error = exc
            finally:
                cleanup()

    def _sync_checkpoints(self) -> None:
        while True:
            item = self._syncs.get()
            if item is None:
                return
            written, save = item
            try:
                if self._error is None:
                    for handle, _offset, _row in self.files.values():
                        os.fsync(handle.fileno())
                    save(written)
            except BaseException as exc:  # raised in the extraction's thread
                self._error = exc

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _stop(self) -> None:
        """Write what is queued, then let the syncing thread finish the checkpoints handed to
        it (the last one among them)."""
        writer, syncer = self._threads
        if writer.is_alive():
            self._queue.put(None)
            writer.join()
        if syncer.is_alive():
            self._syncs.put(None)
            syncer.join()

    def finish(self) -> dict[str, tuple[int, int]]:
        """Write what is queued, close and rename; name -> (logical bytes, bytes on disk)."""
        self._stop()
        self._raise_if_failed()
        sizes = {}
        for name, (handle, _offset, _row) in self.files.items():
            handle.close()
            os.replace(self.folder / (name + PARTIAL), self.folder / name)
            sizes[name] = file_sizes(self.folder / name)
        self.files.clear()
        return sizes

    def keep(self) -> None:
        """Stop, after what is queued (a checkpoint among it), and leave the `.partial` files
        for a resumed run. An error of the writer is not raised: the run is ending anyway."""
        self._stop()
        self._close_files()

    def _close_files(self) -> None:
        for handle, _offset, _row in self.files.values():
            handle.close()
        self.files.clear()


def file_sizes(path: Path) -> tuple[int, int]:
    """(logical size, space used on disk): a file with holes uses less than its size."""
    stat = path.stat()
    return stat.st_size, getattr(stat, "st_blocks", stat.st_size // 512 + 1) * 512


class HostStaging:
    """Device tensors -> numpy arrays the writer can read after the next forward pass started.
    On the CPU that is the tensor's own memory. On a GPU, a ring of pinned buffers (one slot per
    batch in flight, so it is bounded by the writer's queue) receives non_blocking copies; the
    writer waits for the slot's event before reading and then gives the slot back."""

    def __init__(self, device: torch.device, shapes: dict[str, tuple[tuple[int, ...], torch.dtype]]):
        self.cuda = device.type == "cuda"
        self._free: queue.Queue = queue.Queue()
        if self.cuda:
            # Flat buffers: a batch takes a contiguous prefix, so its copy is one asynchronous
            # transfer (a strided view would go through an unpinned temporary, synchronously).
            # Fewer slots than the writer's queue holds only make the loop wait for the writer.
            for _ in range(STAGING_SLOTS):
                self._free.put(
                    {
                        name: torch.empty(math.prod(shape), dtype=dtype, pin_memory=True)
                        for name, (shape, dtype) in shapes.items()
                    }
                )

    def stage(
        self, tensors: dict[str, torch.Tensor]
    ) -> tuple[dict[str, np.ndarray], Callable[[], None], Callable[[], None]]:
        """(host arrays, wait: call before reading them, release: call after)."""
        if not self.cuda:
            arrays = {name: t.numpy() for name, t in tensors.items()}
            return arrays, lambda: None, lambda: None
        slot = self._free.get()
        views, device = {}, None
        for name, tensor in tensors.items():
            view = slot[name][: tensor.numel()].view(tensor.shape)
            view.copy_(tensor, non_blocking=True)
            views[name], device = view, tensor.device
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(device))  # the stream the copies were queued on
        return (
            {name: v.numpy() for name, v in views.items()},
            event.synchronize,
            lambda: self._free.put(slot),
        )
