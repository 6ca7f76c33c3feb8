"""Two checks of the extraction engine on a real card: out-of-memory halving and cancel.

    python bench/gpu_checks.py --json $OUT/gpu_checks.json     # CUDA (bench/gpu_check.sh runs it)
    python bench/gpu_checks.py --device cpu --small            # the code path, anywhere

Out of memory: the TinyLlama-shaped model in FP16 with this process's share of the card capped
(torch.cuda.set_per_process_memory_fraction) to the weights plus --budget-gib, then an extraction
whose first batch cannot fit in that budget (batch 512 x 1024 tokens, 3 layers x 3 hooks). The
card's own out-of-memory error must halve the batch until it fits, and the extraction complete with
its oom_events recorded. On the CPU there is no such error: the check only runs the path.
Cancel: an extraction of 20,000 samples, cancelled 3 s after it starts; the engine must raise
ExtractionCancelled within 2 s of the request and leave no files.
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
    settings = ExtractionSettings(
        layers=[0, n // 2, n - 1],
        hooks=["residual", "mlp", "attention"],
        batch_size=batch,
        context_length=context,
    )
    start = time.perf_counter()
    meta = extract(loaded.model, loaded.tokenizer, texts(batch * 2, context + 200), settings, out)
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
    result["files_left"] = sorted(p.name for p in out.iterdir()) if out.exists() else []
    result["threads_left"] = sorted(
        t.name for t in threading.enumerate() if t.name in ("tokenize-ahead", "activation-writer")
    )
    return result


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
        }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    ok = (
        results["cancel"].get("cancelled")
        and results["cancel"]["stopped_after_request_s"] < 2
        and not results["cancel"]["files_left"]
        and results["oom"]["complete"]
        and results["oom"]["halved"] is not False
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
