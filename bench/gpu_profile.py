"""Where an extraction's time goes on a GPU: the engine with its parts turned off one by one
(checkpoints, the writes, the statistics, the top-K), against a bare forward to the deepest layer
over the same batches. Each difference is that part's cost. A part turned off changes what the
run produces, so this is a measurement only, never a way to run.

    python bench/gpu_profile.py --json $OUT/gpu_profile.json    # CUDA (bench/gpu_check.sh runs it)
    python bench/gpu_profile.py --device cpu --shape tiny --samples 128   # the code path, anywhere
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

VARIANTS = [
    ("engine", set()),
    ("no checkpoints", {"checkpoints"}),
    ("no checkpoints, no writes", {"checkpoints", "writes"}),
    ("no checkpoints, writes, statistics", {"checkpoints", "writes", "statistics"}),
    ("no checkpoints, writes, statistics, top-K", {"checkpoints", "writes", "statistics", "topk"}),
]


@contextlib.contextmanager
def without(parts: set[str]):
    """The engine with `parts` replaced by no-ops, for the length of the block."""
    from models_app.ml.outputs import Outputs
    from models_app.ml.stats import RunningStats
    from models_app.ml.topk import RunningTopK

    patched = {
        "writes": (Outputs, "write_rows"),
        "statistics": (RunningStats, "update"),
        "topk": (RunningTopK, "update"),
    }
    originals = {part: getattr(*patched[part]) for part in parts if part in patched}
    try:
        for part in originals:
            setattr(*patched[part], lambda *args, **kwargs: None)
        yield
    finally:
        for part, original in originals.items():
            setattr(*patched[part], original)


def timed(loaded, samples, args, layers, out: Path, parts: set[str]) -> float:
    import torch

    from models_app.ml.extraction import ExtractionSettings, extract

    settings = ExtractionSettings(
        layers=layers,
        hooks=["residual", "mlp", "attention"],
        batch_size=args.batch_size,
        context_length=args.context,
        top_k=10,
        dtype=args.dtype,
    )
    every = 1e9 if "checkpoints" in parts else None
    start = time.perf_counter()
    with without(parts), contextlib.suppress(Exception):  # a part turned off may fail the ending
        extract(
            loaded.model,
            loaded.tokenizer,
            samples,
            settings,
            out,
            **({"checkpoint_seconds": every} if every else {}),
        )
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return len(samples) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", default="tinyllama")
    parser.add_argument("--device", default=None)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--other-batch-sizes", default="", help="e.g. 16,256: the bare forward and the whole engine only"
    )
    parser.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import torch
    from extraction import bare_forward, build, load, texts

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows, batch = {}, args.batch_size
    with tempfile.TemporaryDirectory(prefix="mistudio-profile-") as scratch:
        scratch = Path(scratch)
        build(scratch / "model", args.shape)
        loaded = load(scratch / "model", device)
        n = loaded.model.config.num_hidden_layers
        layers = [0, n // 2, n - 1]
        samples = texts(args.samples, 160)
        bare_forward(loaded, samples[: args.batch_size * 2], args.batch_size, args.context)  # warm-up
        rows["bare forward"] = bare_forward(loaded, samples, args.batch_size, args.context, deepest=n - 1)
        for index, (name, parts) in enumerate(VARIANTS):
            rows[name] = timed(loaded, samples, args, layers, scratch / f"run{index}", parts)
        others = {}
        for size in [int(b) for b in args.other_batch_sizes.split(",") if b]:
            args.batch_size = size
            bare = bare_forward(loaded, samples, size, args.context, deepest=n - 1)
            others[size] = (bare, timed(loaded, samples, args, layers, scratch / f"batch{size}", set()))
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"{args.shape} on {name}; {args.samples} samples x {args.context} tokens, {args.dtype}")
    print(f"| run, batch {batch} | samples/s | ms per batch |")
    print("|---|---|---|")
    for run, rate in rows.items():
        print(f"| {run} | {rate:.1f} | {1e3 * batch / rate:.1f} |")
    for size, (bare, engine) in others.items():
        print(f"| batch {size}: bare forward / engine | {bare:.1f} / {engine:.1f} | {engine / bare:.2f}x |")
    if args.json:
        others_json = {size: {"bare_forward": b, "engine": e} for size, (b, e) in others.items()}
        args.json.write_text(
            json.dumps(
                {
                    "device": name,
                    "dtype": args.dtype,
                    "batch": batch,
                    "samples_per_second": rows,
                    "other_batches": others_json,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
