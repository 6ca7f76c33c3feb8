"""What the neuron page costs: ml/neuron.profile (two passes over one (layer, hook)'s array, a
chunk of real tokens at a time) on a synthetic extraction folder of a given size, its time and
the most memory it allocated (tracemalloc). Nothing runs during extraction for it, so the engine's throughput is
untouched; this is the price of opening the page.

    .venv/bin/python bench/neuron_page.py --samples 4096 --context 128 --hidden 1024   # 1 GiB
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KEY = "layer_0_residual"


def build(folder: Path, samples: int, context: int, hidden: int) -> int:
    """A folder as an extraction leaves it (float16 array, padding on the right); real tokens."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(context // 4, context + 1, samples)
    mask = (np.arange(context)[None, :] < lengths[:, None]).astype(np.int8)
    np.save(folder / "attention_mask.npy", mask)
    np.save(folder / "tokens.npy", rng.integers(0, 1000, (samples, context), dtype=np.int32) * mask)
    array = np.lib.format.open_memmap(
        folder / f"{KEY}.npy", mode="w+", dtype=np.float16, shape=(samples, context, hidden)
    )
    for first in range(0, samples, 256):
        block = rng.standard_normal((min(256, samples - first), context, hidden), dtype=np.float32)
        array[first : first + len(block)] = block * mask[first : first + len(block), :, None]
    array.flush()
    del array
    meta = {
        "complete": True,
        "dtype": "float16",
        "real_tokens": int(lengths.sum()),
        "statistics": {
            KEY: {
                "layer": 0,
                "hook": "residual",
                "module": "model.layers.0",
                "file": f"{KEY}.npy",
                "shape": [samples, context, hidden],
            }
        },
    }
    (folder / "metadata.json").write_text(json.dumps(meta))
    return int(lengths.sum())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--scratch", default=None)
    args = parser.parse_args()
    from models_app.ml import neuron

    with tempfile.TemporaryDirectory(prefix="mistudio-neuron-", dir=args.scratch) as scratch:
        folder = Path(scratch)
        tokens = build(folder, args.samples, args.context, args.hidden)
        size = (folder / f"{KEY}.npy").stat().st_size
        tracemalloc.start()  # numpy reports its arrays to it; the memory map's pages are the OS's
        start = time.perf_counter()
        neuron.profile(folder, KEY, 7)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(
        f"{args.samples} samples x {args.context} x {args.hidden} float16 ({size / 2**30:.2f} GiB, {tokens:,} real"
        f" tokens): the neuron's profile in {seconds:.1f} s, at most {peak / 2**20:.0f} MiB allocated"
    )


if __name__ == "__main__":
    main()
