"""What checkpoints cost the extraction engine (models_app/ml/checkpoint.py).

    .venv/bin/python bench/checkpoints.py [--samples 400] [--repeats 2]

The pythia-70m-shaped model and short texts of bench/peers.py, layers 0/2/4 x residual + mlp,
batch 16, context 128, each output dtype: the engine with a checkpoint after every batch against
the engine with none, alternately (none, every, every, none, ...), the best time of each kept.
The difference over the number of checkpoints taken is the cost of one (a snapshot of the
statistics and top-K, an fsync of the arrays, the state saved), and at the default of one every
MISTUDIO_CHECKPOINT_SECONDS (5) its share of the run follows.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from peers import CONTEXT, HOOKS, LAYERS, build, dataset, load  # noqa: E402

BATCH = 16


def run(loaded, texts, folder: Path, dtype: str, every: float) -> tuple[float, int]:
    from models_app.ml import checkpoint
    from models_app.ml.extraction import ExtractionSettings, extract

    shutil.rmtree(folder, ignore_errors=True)
    saves = [0]
    real_save = checkpoint.save

    def counted(*args, **kwargs):
        saves[0] += 1
        real_save(*args, **kwargs)

    checkpoint.save = counted
    try:
        settings = ExtractionSettings(
            layers=LAYERS, hooks=HOOKS, batch_size=BATCH, context_length=CONTEXT, dtype=dtype
        )
        start = time.perf_counter()
        extract(loaded.model, loaded.tokenizer, texts, settings, folder, checkpoint_seconds=every)
        return time.perf_counter() - start, saves[0]
    finally:
        checkpoint.save = real_save


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        build(scratch / "model")
        loaded = load(scratch / "model")
        texts = dataset(loaded.tokenizer, args.samples, 10, 60, seed=1)
        rows = []
        for dtype in ("float16", "float32"):
            run(loaded, texts[:32], scratch / "warm", dtype, 0)  # warm-up
            never, every, saves = [], [], 0
            for i in range(args.repeats):
                order = ("never", "every") if i % 2 == 0 else ("every", "never")
                for which in order:
                    seconds, count = run(
                        loaded, texts, scratch / "out", dtype, 0 if which == "every" else 1e9
                    )
                    (every if which == "every" else never).append(seconds)
                    saves = count if which == "every" else saves
            cost = (min(every) - min(never)) / saves
            rows.append(
                {
                    "dtype": dtype,
                    "run_seconds": round(min(never), 2),
                    "checkpoints": saves,
                    "ms_per_checkpoint": round(1000 * cost, 1),
                    "share_at_5s": round(cost / 5.0, 4),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print(
        "| output dtype | run without checkpoints | checkpoints (one per batch) | per checkpoint | share of a run at one per 5 s |"
    )
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['dtype']} | {row['run_seconds']} s | {row['checkpoints']} | {row['ms_per_checkpoint']} ms"
            f" | {100 * row['share_at_5s']:.2f}% |"
        )


if __name__ == "__main__":
    main()
