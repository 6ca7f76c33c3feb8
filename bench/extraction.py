"""Extraction engine throughput against a bare forward pass, and peak memory against samples.

    python bench/extraction.py                     # CPU-sized model; the table in bench/README.md
    python bench/extraction.py --shape tinyllama --samples 2048 --batch-size 32   # on CUDA

Throughput: the same length-sorted batches through (a) a bare forward pass to the deepest layer,
(b) the engine with layers first / middle / last x residual, mlp, attention (writing files,
statistics and top-K), (c) the engine with layers 0-1 only (it stops the forward pass there).
Memory: the engine in a fresh process at N and 10 x N samples; peak RSS of each.
Targets: (b) >= 0.9 x (a) (on CUDA, for a TinyLlama shape: > 200 samples/s); (c) faster than
(a); peak RSS at 10 x within 10% of 1 x. With --json PATH the figures are written there too.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {
    "small": dict(
        hidden_size=512,
        intermediate_size=1376,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=4,
        vocab_size=4096,
        max_position_embeddings=512,
    ),
    "tiny": dict(
        hidden_size=256,
        intermediate_size=704,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=2048,
        max_position_embeddings=512,
    ),
    "tinyllama": dict(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        vocab_size=32000,
        max_position_embeddings=2048,
    ),
}
WORDS = [
    "residual",
    "stream",
    "attention",
    "head",
    "neuron",
    "feature",
    "circuit",
    "token",
    "layer",
    "probe",
    "sparse",
    "dictionary",
    "superposition",
    "embedding",
    "logit",
    "direction",
    "activation",
    "patching",
]


def texts(count: int, words: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(count)]


def build(folder: Path, shape: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from tests.tinymodels import build_tokenizer

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(LlamaConfig(**SHAPES[shape])).save_pretrained(folder)
    build_tokenizer(folder)


def load(folder: Path, device: str):
    from models_app.ml import loading

    return loading.load(folder, "fp16" if device == "cuda" else "fp32", device=device)


def bare_forward(
    loaded, samples: list[str], batch_size: int, context: int, deepest: int | None = None
) -> float:
    """Samples/s of bare forward passes over length-sorted batches padded to their longest,
    stopping after layer `deepest` (None: the whole model): the limit the engine is held to."""
    import torch

    from models_app.ml.batches import pad, tokenize_window
    from models_app.ml.hooks import find_hook_points

    tokenizer, model = loaded.tokenizer, loaded.model
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    device = next(model.parameters()).device
    window = tokenize_window(tokenizer, samples, 0, context)
    batches = [
        pad(window, list(range(i, min(i + batch_size, len(samples)))), tokenizer.pad_token_id or 0)
        for i in range(0, len(samples), batch_size)
    ]

    class Stop(Exception):
        pass

    def stop(*_args):
        raise Stop()

    handle = None
    if deepest is not None:
        handle = model.get_submodule(find_hook_points(model).path("residual", deepest)).register_forward_hook(
            stop
        )
    try:
        start = time.perf_counter()
        with torch.inference_mode():
            for batch in batches:
                try:
                    model(
                        input_ids=batch.input_ids.to(device),
                        attention_mask=batch.attention_mask.to(device),
                        use_cache=False,
                    )
                except Stop:
                    pass
            if device.type == "cuda":
                torch.cuda.synchronize()
        return len(samples) / (time.perf_counter() - start)
    finally:
        if handle is not None:
            handle.remove()


def engine(loaded, samples, batch_size, context, layers, out: Path, written: dict | None = None) -> float:
    """Samples/s of the engine; `written`, when given, receives the activation bytes/s it wrote."""
    from models_app.ml.extraction import ExtractionSettings, extract

    settings = ExtractionSettings(
        layers=layers,
        hooks=["residual", "mlp", "attention"],
        batch_size=batch_size,
        context_length=context,
        top_k=10,
    )
    start = time.perf_counter()
    result = extract(loaded.model, loaded.tokenizer, samples, settings, out)
    seconds = time.perf_counter() - start
    if written is not None:  # real tokens only: padding is never copied or written
        itemsize = 2 if result["dtype"] == "float16" else 4
        written["bytes_per_second"] = (
            result["real_tokens"] * result["hidden_size"] * itemsize * len(result["statistics"]) / seconds
        )
    return len(samples) / seconds


def memory_child(args) -> None:
    """Run once in a fresh process and print its peak RSS (KiB on Linux)."""
    loaded = load(args.model, args.device)
    n = loaded.model.config.num_hidden_layers
    with tempfile.TemporaryDirectory(prefix="mistudio-bench-", dir=args.scratch) as out:
        engine(
            loaded,
            texts(args.samples, args.words),
            args.batch_size,
            args.context,
            [0, n // 2, n - 1],
            Path(out),
        )
    print(json.dumps({"peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def peak_rss(model: Path, samples: int, args) -> int:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--model",
        str(model),
        "--samples",
        str(samples),
        "--device",
        args.device,
        "--batch-size",
        str(args.batch_size),
        "--context",
        str(args.context),
        "--words",
        str(args.words),
    ]
    if args.scratch:
        command += ["--scratch", args.scratch]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_rss_kib"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", choices=SHAPES, default="small")
    parser.add_argument("--device", default=None)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--words", type=int, default=160, help="words per sample (>= context tokens)")
    parser.add_argument("--memory-shape", choices=SHAPES, default="tiny")
    parser.add_argument("--memory-samples", type=int, default=200)
    parser.add_argument("--scratch", default=None, help="where outputs are written")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--skip-memory", action="store_true", help="no peak-RSS runs")
    parser.add_argument(
        "--io-limits", action="store_true", help="also the copy and disk limits (bench/io_limits.py)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.child:
        return memory_child(args)

    with tempfile.TemporaryDirectory(prefix="mistudio-bench-", dir=args.scratch) as scratch:
        scratch = Path(scratch)
        build(scratch / "model", args.shape)
        loaded = load(scratch / "model", args.device)
        n = loaded.model.config.num_hidden_layers
        samples = texts(args.samples, args.words)
        bare_forward(loaded, samples[: args.batch_size * 2], args.batch_size, args.context)  # warm-up
        bare = bare_forward(loaded, samples, args.batch_size, args.context, deepest=n - 1)
        written: dict = {}
        last = engine(
            loaded, samples, args.batch_size, args.context, [0, n // 2, n - 1], scratch / "last", written
        )
        early = engine(loaded, samples, args.batch_size, args.context, [0, 1], scratch / "early")
        del loaded
        limits = None
        if args.io_limits:
            from io_limits import measure

            limits = measure(scratch, args.device == "cuda")
        one = ten = None
        if not args.skip_memory:
            build(scratch / "memory-model", args.memory_shape)
            one = peak_rss(scratch / "memory-model", args.memory_samples, args)
            ten = peak_rss(scratch / "memory-model", 10 * args.memory_samples, args)

    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(
        f"{args.shape} Llama on {device}; {args.samples} samples x {args.context} tokens, batch {args.batch_size}\n"
    )
    print("| run | samples/s | vs bare forward |")
    print("|---|---|---|")
    print(f"| bare forward to layer {n - 1} | {bare:.1f} | 1.00x |")
    print(f"| engine, layers 0/{n // 2}/{n - 1} x 3 hooks | {last:.1f} | {last / bare:.2f}x |")
    print(f"| engine, layers 0-1 x 3 hooks | {early:.1f} | {early / bare:.2f}x |")
    if limits is not None:
        rate = written["bytes_per_second"] / 1e9
        print(f"\nThe engine (layers 0/{n // 2}/{n - 1}) wrote {rate:.2f} GB/s of activations")
        for name, value in limits.items():
            if name.endswith("_gb_s"):
                print(f"- {name}: {value:.2f} GB/s (the engine at {rate / value:.2f}x of it)")
    if one is not None:
        print(
            f"\nPeak RSS ({args.memory_shape} Llama, 3 layers x 3 hooks): {args.memory_samples} samples "
            f"{one / 1024:.0f} MiB; {10 * args.memory_samples} samples {ten / 1024:.0f} MiB "
            f"({100 * (ten - one) / one:+.1f}%)"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "device": device,
                    "shape": args.shape,
                    "samples": args.samples,
                    "samples_per_second": {"bare_forward": bare, "engine_last": last, "engine_early": early},
                    "peak_rss_kib": [one, ten],
                    "engine_last_bytes_per_second": written["bytes_per_second"],
                    "io_limits": limits,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
