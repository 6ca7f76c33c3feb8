"""Load time and GPU memory of each format, through the studio's own loading code.

Builds a random Llama with TinyLlama-1.1B's shape (no download), saves it as the Hub would, then
loads it in FP16 / Q8 / Q4 / Q2 with models_app.ml.loading.load and records, per format: load
time, VRAM allocated after loading (torch.cuda.memory_allocated), peak VRAM during the load, and
the model's own get_memory_footprint(); quantized formats are then loaded a second time from the
copy the studio stores. Target: Q4 under 40% of FP16's VRAM.

    python bench/gpu_loading.py                       # CUDA, TinyLlama shape
    python bench/gpu_loading.py --device cpu --small  # smoke run anywhere
Results go to stdout as a markdown table and, with --json PATH, as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from models_app.ml import loading

TINYLLAMA = dict(
    hidden_size=2048,
    intermediate_size=5632,
    num_hidden_layers=22,
    num_attention_heads=32,
    num_key_value_heads=4,
    vocab_size=32000,
    max_position_embeddings=2048,
    rope_theta=10000.0,
    tie_word_embeddings=False,
)
SMALL = dict(
    TINYLLAMA,
    hidden_size=256,
    intermediate_size=704,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=2,
    vocab_size=4096,
)


def build(folder: Path, shape: dict, device: str) -> int:
    from transformers import AutoModelForCausalLM, LlamaConfig

    from tests.tinymodels import build_tokenizer

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(LlamaConfig(**shape), dtype=torch.float16)
    params = model.num_parameters()
    model.save_pretrained(folder)
    build_tokenizer(folder)
    del model
    _clear(device)
    return params


def _clear(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.synchronize()


def measure(folder: Path, fmt: str, device: str, stored: Path | None = None) -> dict:
    _clear(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    start = time.perf_counter()
    loaded = loading.load(folder, fmt, device=device, quantized_dir=stored)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]], device=device)
    with torch.inference_mode():
        loaded.model(ids)  # one forward pass proves the format runs
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    row = {
        "format": fmt,
        "effective": loaded.effective_format,
        "load_s": round(seconds, 2),
        "footprint_bytes": loaded.footprint_bytes,
        "note": loaded.fallback_reason,
    }
    if device == "cuda":
        row["vram_bytes"] = torch.cuda.memory_allocated() - before
        row["peak_vram_bytes"] = torch.cuda.max_memory_allocated() - before
    if stored is not None and not stored.exists():
        loading.save_quantized(loaded, stored)
    del loaded
    _clear(device)
    return row


def measure_format(folder: Path, fmt: str, device: str) -> dict:
    """First load (quantizing), then a second load from the stored copy the studio keeps."""
    stored = folder.parent / f"stored_{fmt}"
    row = measure(folder, fmt, device, stored=stored)
    if stored.exists():
        row["reload_s"] = measure(folder, fmt, device, stored=stored)["load_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="a 4-layer model for a smoke run")
    parser.add_argument("--formats", default="fp16,q8,q4,q2")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mistudio-bench-") as scratch:
        folder = Path(scratch) / "model"
        params = build(folder, SMALL if args.small else TINYLLAMA, args.device)
        rows = [measure_format(folder, fmt, args.device) for fmt in args.formats.split(",")]
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"{params:,} parameters on {device_name}; torch {torch.__version__}\n")
    print(
        "| format | effective | first load (s) | load of stored copy (s) | VRAM after load | peak VRAM | get_memory_footprint |"
    )
    print("|---|---|---|---|---|---|---|")
    fp16 = next((r for r in rows if r["format"] == "fp16"), None)
    for r in rows:
        vram = r.get("vram_bytes")
        share = (
            f" ({100 * vram / fp16['vram_bytes']:.0f}% of FP16)"
            if vram and fp16 and fp16.get("vram_bytes")
            else ""
        )
        print(
            f"| {r['format'].upper()} | {r['effective'].upper()} | {r['load_s']} | {r.get('reload_s', '—')} | "
            f"{_gib(vram)}{share} | {_gib(r.get('peak_vram_bytes'))} | {_gib(r['footprint_bytes'])} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"params": params, "device": device_name, "rows": rows}, indent=2))


def _gib(value) -> str:
    return "—" if value is None else f"{value / 2**30:.2f} GiB"


if __name__ == "__main__":
    main()
