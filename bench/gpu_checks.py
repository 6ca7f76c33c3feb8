"""Two checks of the extraction engine on a real card: out-of-memory halving and cancel.

    python bench/gpu_checks.py --json $OUT/gpu_checks.json     # CUDA (bench/gpu_check.sh runs it)
    python bench/gpu_checks.py --device cpu --small            # the code path, anywhere

Out of memory: the TinyLlama-shaped model in FP16 with this process's share of the card capped
(torch.cuda.set_per_process_memory_fraction) to the weights plus --budget-gib, then an extraction
whose first batch cannot fit in that budget (batch 512 x 1024 tokens, 2 layers x residual). The
card's own out-of-memory error must halve the batch until it fits, and the extraction complete with
its oom_events recorded. On the CPU there is no such error: the check only runs the path.
Cancel: an extraction of 20,000 samples, cancelled 3 s after it starts; the engine must raise
ExtractionCancelled within 2 s of the request and leave no writer or tokenizing thread; its rows
up to the last checkpoint stay for a Retry (checkpoint.json among the files left).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def oom_check(loaded, device: str, budget_gib: float, small: bool, out: Path) -> dict:
    import torch
    from extraction import texts

    from models_app.ml.extraction import ExtractionSettings, extract

    if device == "cuda":
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(
            min((torch.cuda.memory_allocated() + budget_gib * 2**30) / total, 1.0)
        )
    context, batch = (64, 8) if small else (1024, 512)
    n = loaded.model.config.num_hidden_layers
    # Two residual hooks over one batch's samples: enough to halve (the attention scores of 512 x
    # 1,024 tokens alone are over the budget), and few bytes to write once it runs.
    settings = ExtractionSettings(
        layers=[0, n - 1], hooks=["residual"], batch_size=batch, context_length=context
    )
    start = time.perf_counter()
    meta = extract(loaded.model, loaded.tokenizer, texts(batch, context + 200), settings, out)
    if device == "cuda":
        torch.cuda.set_per_process_memory_fraction(1.0)
    return {
        "oom_events": meta["oom_events"],
        "final_batch_size": meta["final_batch_size"],
        "complete": meta["complete"],
        "seconds": time.perf_counter() - start,
        "halved": bool(meta["oom_events"]) if device == "cuda" else None,
    }


def cancel_check(loaded, small: bool, out: Path) -> dict:
    from extraction import texts

    from models_app.ml.extraction import ExtractionCancelled, ExtractionSettings, extract

    n = loaded.model.config.num_hidden_layers
    settings = ExtractionSettings(
        layers=[0, n - 1], hooks=["residual", "mlp"], batch_size=8 if small else 64, context_length=128
    )
    asked = {}

    def should_cancel() -> bool:
        if time.perf_counter() - started > 3 and "at" not in asked:
            asked["at"] = time.perf_counter()
        return "at" in asked

    started = time.perf_counter()
    try:
        extract(
            loaded.model, loaded.tokenizer, texts(20_000, 160), settings, out, should_cancel=should_cancel
        )
        result = {"cancelled": False}
    except ExtractionCancelled:
        result = {"cancelled": True, "stopped_after_request_s": time.perf_counter() - asked["at"]}
    # A cancelled run keeps its rows up to its last checkpoint, for a Retry to continue from.
    result["files_left"] = sorted(p.name for p in out.iterdir()) if out.exists() else []
    result["resumable"] = "checkpoint.json" in result["files_left"]
    result["threads_left"] = sorted(
        t.name for t in threading.enumerate() if t.name in ("tokenize-ahead", "activation-writer")
    )
    return result


def pieces_check(loaded, small: bool, out: Path) -> dict:
    """The same extraction with the statistics and top-K counted in small pieces of each batch
    (as a batch too large for one piece is) and whole: the figures must agree."""
    import numpy as np
    from extraction import texts

    from models_app.ml import stats
    from models_app.ml.extraction import ExtractionSettings, extract

    n = loaded.model.config.num_hidden_layers
    settings = ExtractionSettings(
        layers=[0, n - 1], hooks=["residual", "mlp"], batch_size=16, context_length=64, top_k=5
    )
    samples = texts(64, 80)
    whole = extract(loaded.model, loaded.tokenizer, samples, settings, out / "whole")
    default = stats.DEVICE_PIECE_VALUES
    stats.DEVICE_PIECE_VALUES = 3 * loaded.model.config.hidden_size  # three tokens a piece
    try:
        pieced = extract(loaded.model, loaded.tokenizer, samples, settings, out / "pieced")
    finally:
        stats.DEVICE_PIECE_VALUES = default
    worst, topk_equal = 0.0, True
    for key, figures in whole["statistics"].items():
        other = pieced["statistics"][key]
        for name in ("mean", "mean_abs", "std", "min", "max", "sparsity_percent", "l2_norm_mean"):
            scale = max(abs(figures[name]), 1e-12)
            worst = max(worst, abs(figures[name] - other[name]) / scale)
        topk_equal &= figures["histogram"] == other["histogram"]
        a, b = np.load(out / "whole" / f"topk_{key}.npz"), np.load(out / "pieced" / f"topk_{key}.npz")
        topk_equal &= bool(np.array_equal(a["values"], b["values"]))
    return {"worst_relative_difference": worst, "histograms_and_topk_values_equal": bool(topk_equal)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--small", action="store_true", help="a tiny model, for a smoke run")
    parser.add_argument("--budget-gib", type=float, default=6.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import torch
    from extraction import build, load

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory(prefix="mistudio-gpu-checks-") as scratch:
        scratch = Path(scratch)
        build(scratch / "model", "tiny" if args.small else "tinyllama")
        loaded = load(scratch / "model", device)
        results = {
            "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
            "oom": oom_check(loaded, device, args.budget_gib, args.small, scratch / "oom"),
            "cancel": cancel_check(loaded, args.small, scratch / "cancel"),
            "pieces": pieces_check(loaded, args.small, scratch / "pieces"),
        }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    ok = (
        results["cancel"].get("cancelled")
        and results["cancel"]["stopped_after_request_s"] < 2
        and not results["cancel"]["threads_left"]
        and results["oom"]["complete"]
        and results["oom"]["halved"] is not False
        and results["pieces"]["worst_relative_difference"] < 1e-9
        and results["pieces"]["histograms_and_topk_values_equal"]
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
