"""The "tokens" export: every real token of the extraction, flat and in dataset order. Per hook a
`layer_{L}_{hook}.npy` of shape [n_real_tokens, d] in the extraction's dtype, and beside them
`token_ids.npy` (int32), `sample_index.npy` (the sample's row in the extraction's files) and
`position.npy` (the token's position in that sample): row i of every file is the same token."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from .common import BATCH_BYTES, ExportProgress, Meter, now, refuse_existing, write_manifest, writing
from .source import Source


def export_tokens(
    folder: Path,
    out: Path,
    *,
    hooks: Sequence[str] | None = None,
    on_progress: Callable[[ExportProgress], None] = lambda p: None,
    should_cancel: Callable[[], bool] = lambda: False,
    batch_bytes: int = BATCH_BYTES,
) -> dict[str, Any]:
    """Write the export into `out` (which must not exist); returns its manifest."""
    refuse_existing(out)
    source = Source(folder, hooks)
    total = source.total
    # int32 holds every sample index a record of the studio can have (vocabulary.MAX_SAMPLES);
    # a folder made elsewhere may hold more.
    sample_dtype = np.int32 if len(source.lengths) <= np.iinfo(np.int32).max else np.int64
    layout: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
        h.key: (source.dtype, (total, h.hidden_size)) for h in source.hooks
    }
    layout["token_ids"] = (np.dtype(np.int32), (total,))
    layout["sample_index"] = (np.dtype(sample_dtype), (total,))
    layout["position"] = (np.dtype(np.int32), (total,))
    token_bytes = sum(dtype.itemsize * math.prod(shape[1:]) for dtype, shape in layout.values())
    step = max(1, batch_bytes // token_bytes)
    meter = Meter(total, on_progress, should_cancel)
    with writing(out) as partial:
        with ExitStack() as open_files:
            files = {
                name: open_files.enter_context(_FlatFile(partial / f"{name}.npy", dtype, shape))
                for name, (dtype, shape) in layout.items()
            }
            for first in range(0, total, step):
                meter.check()
                stop = min(total, first + step)
                batch = {
                    name: np.empty((stop - first, *shape[1:]), dtype)
                    for name, (dtype, shape) in layout.items()
                }
                source.fill(first, stop, batch)
                for name, values in batch.items():
                    files[name].append(values)
                meter.add(stop - first, sum(values.nbytes for values in batch.values()))
        manifest = {
            "format": "tokens",
            **source.provenance(),
            "tokens": total,
            "files": {
                f"{name}.npy": {"shape": list(shape), "dtype": dtype.name}
                for name, (dtype, shape) in layout.items()
            },
            "exported_at": now(),
        }
        write_manifest(partial, manifest)
    return manifest


class _FlatFile:
    """A .npy file of a known shape, filled from its start one batch after the other. The header
    and full size come from open_memmap; the values go through plain writes, because pages
    dirtied through a memory map would count in the process's memory and grow with the export."""

    def __init__(self, path: Path, dtype: np.dtype, shape: tuple[int, ...]):
        header = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        offset = header.offset
        del header  # the file has its header and its full size now
        self.handle = open(path, "r+b")  # noqa: SIM115 (closed on leaving its `with`)
        self.handle.seek(offset)

    def __enter__(self) -> _FlatFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.handle.close()

    def append(self, values: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(values).data)
