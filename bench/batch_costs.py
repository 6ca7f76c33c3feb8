"""What the engine's own work on a batch costs on the CPU: the statistics (ml/stats.py) and the
top-K (ml/topk.py) of one (layer, hook), timed apart from any forward pass.

    .venv/bin/python bench/batch_costs.py                  # hidden 512, 280 / 1,024 / 4,096 tokens
    .venv/bin/python bench/batch_costs.py --tokens 280 --hidden 2048

Batches of normally distributed values (scale 2) in each output dtype; the statistics and top-K
(K=10) first see 10 batches (the histogram's bins fixed, K values kept), then each timed pass
feeds them 50 more, and the best of 7 passes is kept. Reported per value, and per real token of
bench/peers.py's six (layer, hook)s of that width: what the engine adds to every token's forward
pass, on the same two cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = 6  # bench/peers.py: layers 0/2/4 x residual + mlp
WARM, TIMED, PASSES = 10, 50, 7


def per_batch_seconds(update, batches) -> float:
    best = float("inf")
    for _ in range(PASSES):
        start = time.perf_counter()
        for batch in batches:
            update(batch)
        best = min(best, (time.perf_counter() - start) / len(batches))
    return best


def measure(tokens: int, hidden: int, dtype_name: str) -> dict:
    import torch

    from models_app.ml.stats import RunningStats
    from models_app.ml.topk import RunningTopK

    generator = torch.Generator().manual_seed(tokens)
    dtype = getattr(torch, dtype_name)
    batches = [
        torch.randn(tokens, hidden, generator=generator).mul_(2).to(dtype) for _ in range(WARM + TIMED)
    ]
    where = torch.arange(tokens)
    stats, top = RunningStats(), RunningTopK(10, hidden, "cpu")
    for batch in batches[:WARM]:
        stats.update(batch)
        top.update(batch, where, where)
    timed = batches[WARM:]
    seconds = {
        "statistics": per_batch_seconds(stats.update, timed),
        "top-K": per_batch_seconds(lambda batch: top.update(batch, where, where), timed),
    }
    values = tokens * hidden
    return {
        "tokens": tokens,
        "hidden": hidden,
        "dtype": dtype_name,
        "ns_per_value": {part: s / values * 1e9 for part, s in seconds.items()},
        "us_per_real_token": sum(seconds.values()) / tokens * TARGETS * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tokens", type=lambda text: [int(t) for t in text.split(",")], default=[280, 1024, 4096]
    )
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    rows = [measure(tokens, args.hidden, dtype) for tokens in args.tokens for dtype in ("float16", "float32")]
    print(
        "| tokens a batch | output dtype | statistics ns/value | top-K ns/value | us per real token, 6 hooks |"
    )
    print("|---|---|---|---|---|")
    for row in rows:
        ns = row["ns_per_value"]
        print(
            f"| {row['tokens']} | {row['dtype']} | {ns['statistics']:.2f} | {ns['top-K']:.2f} "
            f"| {row['us_per_real_token']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
