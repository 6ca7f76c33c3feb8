"""The two limits an extraction on a GPU can meet besides the forward pass: copying activations
from the card to pinned host memory, and writing them to disk. bench/extraction.py --io-limits
sets the engine's own bytes/s beside them.

    python bench/io_limits.py --scratch /tmp          # both, on CUDA when available
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

CHUNK = 64 * 2**20  # what the writer hands the kernel at a time, roughly: a batch's rows


def copy_limit(gib: float = 1.0, repeats: int = 5) -> dict:
    """GB/s of a device -> host copy into pinned memory (the engine's staging) and into pageable
    memory, timed with CUDA events after a warm-up."""
    import torch

    values = torch.randn(int(gib * 2**30) // 2, dtype=torch.float16, device="cuda")
    results = {}
    for name, pinned in (("pinned", True), ("pageable", False)):
        host = torch.empty(values.shape, dtype=values.dtype, pin_memory=pinned)
        host.copy_(values, non_blocking=pinned)
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            host.copy_(values, non_blocking=pinned)
        end.record()
        end.synchronize()
        results[f"device_to_{name}_gb_s"] = repeats * values.nbytes / (start.elapsed_time(end) / 1e3) / 1e9
        del host
    return results


def disk_limit(folder: Path, gib: float = 4.0) -> dict:
    """GB/s of plain sequential writes of CHUNK-sized buffers, fsync included (the writer's
    pattern: rows at increasing offsets of a few open files), then the file is deleted."""
    block = os.urandom(CHUNK)  # random, so no layer below can compress or skip it
    count = max(1, int(gib * 2**30) // CHUNK)
    path = Path(tempfile.mkstemp(prefix="mistudio-disk-", dir=folder)[1])
    try:
        start = time.perf_counter()
        with open(path, "wb") as handle:
            for _ in range(count):
                handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())
        seconds = time.perf_counter() - start
    finally:
        path.unlink()
    return {"disk_write_gb_s": count * CHUNK / seconds / 1e9, "disk_folder": str(folder)}


def page_cache_limit(folder: Path, threads: int, gib: float = 4.0) -> dict:
    """GB/s of the same writes without fsync (what a writer gets while the kernel's page cache
    takes them), from `threads` threads each writing its own file: can several writers beat one?"""
    from concurrent.futures import ThreadPoolExecutor

    block = os.urandom(CHUNK)
    count = max(threads, int(gib * 2**30) // CHUNK) // threads
    paths = [Path(tempfile.mkstemp(prefix="mistudio-cache-", dir=folder)[1]) for _ in range(threads)]

    def write(path: Path) -> None:
        with open(path, "wb") as handle:
            for _ in range(count):
                handle.write(block)

    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(write, paths))
        seconds = time.perf_counter() - start
    finally:
        for path in paths:
            path.unlink()
    return {f"page_cache_write_{threads}_threads_gb_s": threads * count * CHUNK / seconds / 1e9}


def measure(folder: Path, cuda: bool) -> dict:
    return {
        **(copy_limit() if cuda else {}),
        **disk_limit(folder),
        **page_cache_limit(folder, 1),
        **page_cache_limit(folder, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    import torch

    print(json.dumps(measure(args.scratch, torch.cuda.is_available()), indent=2))


if __name__ == "__main__":
    main()
