"""The extraction engine against the limit and against nnsight, on the same model and texts.

    make bench-install && .venv/bin/python bench/peers.py          # the table in bench/README.md
    .venv/bin/python bench/peers.py --samples 400 --long-samples 100   # a quick run

A random model with pythia-70m's shape (GPT-NeoX, 6 layers, hidden 512) and a real tokenizer;
layers 0/2/4 x residual + mlp, context 128, batch 16, float16 files. Two datasets: short texts
(10-60 tokens, like a corpus of sentences) and long texts (truncated at the context). In one run:
1. the limit: a bare forward pass that stops after layer 4, over length-sorted batches padded to
   their longest (tokenization done beforehand, outside the timing);
2. the engine: models_app.ml.extraction.extract, writing the .npy files, statistics and top-K;
3. nnsight: `trace` + `.save()` of the same 6 outputs + `tracer.stop()`, batches in dataset
   order padded to their longest (its default), the saved tensors copied to numpy.
Then the engine in a fresh process at N and 10 x N short samples, for its peak RSS.
Targets (2 cores): engine >= 1.3x nnsight on short texts, >= 1.0x on long; >= 0.9x the limit on
both; peak RSS flat (within 10%) from 1x to 10x.

    .venv/bin/python bench/peers.py --matrix                     # the engine as a share of the limit
    .venv/bin/python bench/peers.py --matrix --batches 16 --dtypes float32 --repeats 5 --aggregate median
    .venv/bin/python bench/peers.py --matrix --quantization q4   # the same, on a bitsandbytes model

--matrix: the engine against the limit only, over batch 8 / 16 / 32 x output dtype float16 /
float32 x short / long texts (12 cells; --batches and --dtypes narrow it). Each cell runs in a
fresh process that loads the model, warms up both runs at the cell's batch size and dtype, then
times limit and engine alternately, --repeats times each in ABBA order (limit, engine, engine,
limit, ...), and keeps the best (shortest, the default) or the median time of each; it also
reports the median over adjacent (limit, engine) pairs of their ratio (`paired_ratios`). The limit
uses the cell's batch size; both run the same loaded model in the precision it was loaded in
(FP32 here; the engine never casts the model, the output dtype only changes the copies it
stores). --quantization q8 / q4 loads it through models_app.ml.loading.load instead, for both.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PYTHIA_70M = dict(
    hidden_size=512,
    intermediate_size=2048,
    num_hidden_layers=6,
    num_attention_heads=8,
    vocab_size=50304,
    max_position_embeddings=2048,
    rotary_pct=0.25,
)
LAYERS, HOOKS, CONTEXT, BATCH = [0, 2, 4], ["residual", "mlp"], 128, 16
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
    "the",
    "a",
    "of",
    "model",
]


def build(folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, GPTNeoXConfig

    from tests.tinymodels import build_tokenizer

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(GPTNeoXConfig(**PYTHIA_70M)).save_pretrained(folder)
    build_tokenizer(folder)


def load(folder: Path, fmt: str | None = None):
    """FP32 by default; `fmt` (q8 / q4) through the studio's own loading, fallbacks included."""
    from models_app.ml import loading

    return loading.load(folder, fmt or "fp32", device="cpu")


def dataset(tokenizer, count: int, low: int, high: int, seed: int) -> list[str]:
    """`count` texts of `low` to `high` tokens (high above the context: truncated there)."""
    rng = random.Random(seed)
    texts: list[str] = []
    while len(texts) < count:
        target = rng.randint(low, high)
        words = [rng.choice(WORDS) for _ in range(target)]
        while len(tokenizer(" ".join(words))["input_ids"]) > target and len(words) > 1:
            words.pop()
        text = " ".join(words)
        if len(tokenizer(text)["input_ids"]) >= low:
            texts.append(text)
    return texts


def real_tokens(tokenizer, texts: list[str]) -> int:
    return sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=CONTEXT)["input_ids"])


def limit(loaded, texts: list[str], batch: int = BATCH) -> float:
    """Seconds of bare forward passes to the deepest layer over length-sorted batches."""
    from extraction import bare_forward

    return len(texts) / bare_forward(loaded, texts, batch, CONTEXT, deepest=max(LAYERS))


def timed_engine(
    loaded, texts: list[str], out: Path, batch: int = BATCH, dtype: str = "float16"
) -> tuple[float, dict]:
    """Seconds of the engine writing everything into `out`, and the metadata it returns."""
    from models_app.ml.extraction import ExtractionSettings, extract

    settings = ExtractionSettings(
        layers=LAYERS, hooks=HOOKS, batch_size=batch, context_length=CONTEXT, dtype=dtype
    )
    start = time.perf_counter()
    meta = extract(loaded.model, loaded.tokenizer, texts, settings, out)
    return time.perf_counter() - start, meta


def engine(loaded, texts: list[str], out: Path) -> float:
    return timed_engine(loaded, texts, out)[0]


def nnsight_run(loaded, texts: list[str]) -> float:
    import torch
    from nnsight import LanguageModel

    tokenizer = loaded.tokenizer
    tokenizer.padding_side = "right"
    lm = LanguageModel(loaded.model, tokenizer=tokenizer)
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(texts), BATCH):
            saved = []
            with lm.trace(texts[i : i + BATCH], truncation=True, max_length=CONTEXT) as tracer:
                for layer in LAYERS:  # in the order the model computes them
                    saved.append(lm.gpt_neox.layers[layer].mlp.output.save())
                    saved.append(lm.gpt_neox.layers[layer].output.save())
                tracer.stop()
            arrays = [tensor.detach().half().numpy() for tensor in saved]
            assert len(arrays) == len(LAYERS) * len(HOOKS)
    return time.perf_counter() - start


def memory_child(args) -> None:
    loaded = load(args.model, args.quantization)
    texts = dataset(loaded.tokenizer, args.samples, 10, 60, seed=3)
    with tempfile.TemporaryDirectory(prefix="mistudio-peers-") as out:
        engine(loaded, texts, Path(out))
    print(json.dumps({"peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def child(arguments: list[str]) -> dict:
    """Run this script with `arguments` in a fresh process; the JSON of its last line."""
    result = subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        sys.stderr.write(result.stderr)
        raise SystemExit(f"child process failed ({result.returncode}): {' '.join(arguments)}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def peak_rss(model: Path, samples: int, quantization: str | None = None) -> int:
    arguments = ["--child", "--model", str(model), "--samples", str(samples)]
    if quantization:
        arguments += ["--quantization", quantization]
    return child(arguments)["peak_rss_kib"]


def compare(loaded, name: str, texts: list[str], scratch: Path) -> dict:
    tokens = real_tokens(loaded.tokenizer, texts)
    seconds = {
        "limit": limit(loaded, texts),
        "engine": engine(loaded, texts, scratch / name),
        "nnsight": nnsight_run(loaded, texts),
    }
    return {"dataset": name, "samples": len(texts), "real_tokens": tokens, "seconds": seconds}


AGGREGATES = {"best": min, "median": statistics.median}


def model_description(loaded) -> dict:
    """What actually ran: the format loaded (after any fallback) and the dtypes of its tensors."""
    from models_app.ml.loading import quantized_layer_count

    dtypes: dict[str, int] = {}
    for parameter in loaded.model.parameters():
        name = str(parameter.dtype).removeprefix("torch.")
        dtypes[name] = dtypes.get(name, 0) + parameter.numel()
    return {
        "requested_format": loaded.requested_format,
        "effective_format": loaded.effective_format,
        "fallback_reason": loaded.fallback_reason,
        "quantized_layers": quantized_layer_count(loaded.model),
        "parameter_elements_by_dtype": dtypes,
    }


def cell_child(args) -> None:
    """One cell of the matrix in this fresh process: warm-up, then limit and engine alternately."""
    import torch

    loaded = load(args.model, args.quantization)
    texts = json.loads(args.texts.read_text())[args.cell_dataset]
    tokens = real_tokens(loaded.tokenizer, texts)
    batch, dtype = args.cell_batch, args.cell_dtype
    scratch = Path(tempfile.mkdtemp(prefix="mistudio-peers-cell-", dir=args.scratch))
    seconds: dict[str, list[float]] = {"limit": [], "engine": []}
    engine_tokens = None

    def run_engine(subset: list[str], name: str) -> tuple[float, dict]:
        out = scratch / name
        try:
            return timed_engine(loaded, subset, out, batch, dtype)
        finally:
            shutil.rmtree(out, ignore_errors=True)  # outside the timing; keeps the disk and cache clear

    try:
        warm = texts[: 2 * batch]  # every code path once at this batch size and dtype, untimed
        limit(loaded, warm, batch)
        run_engine(warm, "warm-up")
        order = []
        for repeat in range(args.repeats):  # ABBA: a drift of the machine weighs on both alike
            order += ["limit", "engine"] if repeat % 2 == 0 else ["engine", "limit"]
        for run in order:
            gc.collect()
            if run == "limit":
                seconds["limit"].append(limit(loaded, texts, batch))
            else:
                took, meta = run_engine(texts, f"engine-{len(seconds['engine'])}")
                seconds["engine"].append(took)
                engine_tokens = meta["real_tokens"]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": model_description(loaded),
        "samples": len(texts),
        "real_tokens": tokens,
        "engine_real_tokens": engine_tokens,
        "order": order,
        "seconds": seconds,
    }
    print(json.dumps(result))


def paired_ratios(order: list[str], seconds: dict[str, list[float]]) -> list[float]:
    """limit / engine for each two runs next to each other in the ABBA order (limit, engine,
    engine, limit, ...): a slow spell of the machine, which can last a whole run or several,
    then weighs on both runs of a pair alike, where the best of each may come from different
    spells."""
    taken = {run: iter(times) for run, times in seconds.items()}
    runs = [(run, next(taken[run])) for run in order]
    ratios = []
    for first, second in zip(runs[::2], runs[1::2], strict=False):
        times = dict([first, second])
        ratios.append(times["limit"] / times["engine"])
    return ratios


def matrix(args) -> None:
    """The engine as a share of the limit over batch sizes x output dtypes x datasets."""
    from transformers import AutoTokenizer

    aggregate = AGGREGATES[args.aggregate]
    cells = []
    with tempfile.TemporaryDirectory(prefix="mistudio-peers-") as scratch:
        scratch = Path(scratch)
        build(scratch / "model")
        tokenizer = AutoTokenizer.from_pretrained(scratch / "model")  # the one loading.load reads
        texts = {
            "short": dataset(tokenizer, args.samples, 10, 60, seed=1),
            "long": dataset(tokenizer, args.long_samples, CONTEXT + 20, CONTEXT + 80, seed=2),
        }
        (scratch / "texts.json").write_text(json.dumps(texts))
        for name in texts:
            for batch in args.batches:
                for dtype in args.dtypes:
                    arguments = [
                        "--cell",
                        "--model",
                        str(scratch / "model"),
                        "--texts",
                        str(scratch / "texts.json"),
                        "--cell-dataset",
                        name,
                        "--cell-batch",
                        str(batch),
                        "--cell-dtype",
                        dtype,
                        "--repeats",
                        str(args.repeats),
                        "--scratch",
                        str(scratch),
                    ]
                    if args.quantization:
                        arguments += ["--quantization", args.quantization]
                    result = child(arguments)
                    best = {run: aggregate(times) for run, times in result["seconds"].items()}
                    cell = {
                        "dataset": name,
                        "batch": batch,
                        "dtype": dtype,
                        **result,
                        "aggregated_seconds": best,
                        "samples_per_second": {run: result["samples"] / t for run, t in best.items()},
                        "real_tokens_per_second": {run: result["real_tokens"] / t for run, t in best.items()},
                        "engine_vs_limit": best["limit"] / best["engine"],
                        "paired_ratios": paired_ratios(result["order"], result["seconds"]),
                    }
                    cell["engine_vs_limit_paired"] = statistics.median(cell["paired_ratios"])
                    cells.append(cell)
                    print(
                        f"{name} batch {batch} {dtype}: engine {cell['engine_vs_limit']:.2f}x the limit "
                        f"(paired: {cell['engine_vs_limit_paired']:.2f}x)",
                        file=sys.stderr,
                        flush=True,
                    )

    first = cells[0]
    model = first["model"]
    dtypes = ", ".join(f"{dtype} {count:,}" for dtype, count in model["parameter_elements_by_dtype"].items())
    fallback = f" (fell back: {model['fallback_reason']})" if model["fallback_reason"] else ""
    print(
        f"pythia-70m-shaped GPT-NeoX (random), format {model['effective_format'].upper()}{fallback}, "
        f"{model['quantized_layers']} quantized layers, parameter elements by dtype: {dtypes}; "
        f"CPU x{first['threads']} threads, torch {first['torch']}; layers {LAYERS} x {HOOKS}, context {CONTEXT}; "
        f"one process per cell, warm-up then limit and engine alternately (ABBA), "
        f"{args.repeats} run(s) each, {args.aggregate} time kept\n"
    )
    print(
        "| dataset | batch | output dtype | limit samples/s | limit real tokens/s "
        "| engine samples/s | engine real tokens/s | engine / limit | paired runs: median engine / limit |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for cell in cells:
        rate, tokens = cell["samples_per_second"], cell["real_tokens_per_second"]
        print(
            f"| {cell['dataset']} ({cell['samples']}, {cell['real_tokens'] / cell['samples']:.0f} tokens avg) "
            f"| {cell['batch']} | {cell['dtype']} | {rate['limit']:.1f} | {tokens['limit']:.0f} "
            f"| {rate['engine']:.1f} | {tokens['engine']:.0f} | {cell['engine_vs_limit']:.2f}x "
            f"| {cell['engine_vs_limit_paired']:.2f}x |"
        )
    worst = min(cells, key=lambda cell: cell["engine_vs_limit"])
    print(
        f"\nLowest: {worst['engine_vs_limit']:.2f}x the limit ({worst['dataset']}, batch {worst['batch']}, "
        f"{worst['dtype']}); target >= 0.9x in every cell."
    )
    paired = min(cells, key=lambda cell: cell["engine_vs_limit_paired"])
    print(
        f"Lowest median of paired runs: {paired['engine_vs_limit_paired']:.2f}x ({paired['dataset']}, "
        f"batch {paired['batch']}, {paired['dtype']})."
    )
    mismatched = [cell for cell in cells if cell["engine_real_tokens"] != cell["real_tokens"]]
    if mismatched:
        print(f"Warning: the engine counted other real tokens than the limit in {len(mismatched)} cell(s).")
    if args.json:
        settings = {
            "layers": LAYERS,
            "hooks": HOOKS,
            "context": CONTEXT,
            "repeats": args.repeats,
            "aggregate": args.aggregate,
            "quantization": args.quantization,
        }
        args.json.write_text(json.dumps({"settings": settings, "cells": cells}, indent=2))


def numbers(kind):
    def parse(text: str) -> list:
        return [kind(item) for item in text.split(",") if item.strip()]

    return parse


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=2000, help="short texts")
    parser.add_argument("--long-samples", type=int, default=400, help="long texts")
    parser.add_argument("--memory-samples", type=int, default=500)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--quantization", choices=["q8", "q4"], help="load the model in this format (default FP32)"
    )
    parser.add_argument("--matrix", action="store_true", help="the engine against the limit per cell")
    parser.add_argument("--batches", type=numbers(int), default=[8, 16, 32], help="--matrix: 8,16,32")
    parser.add_argument(
        "--dtypes", type=numbers(str), default=["float16", "float32"], help="--matrix: float16,float32"
    )
    parser.add_argument("--repeats", type=int, default=3, help="--matrix: timed runs of each, per cell")
    parser.add_argument(
        "--aggregate", choices=AGGREGATES, default="best", help="--matrix: which time of the repeats"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cell", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--texts", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cell-dataset", help=argparse.SUPPRESS)
    parser.add_argument("--cell-batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cell-dtype", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return memory_child(args)
    if args.cell:
        return cell_child(args)
    if args.matrix:
        from models_app.ml.vocabulary import DTYPES

        if args.repeats < 1 or not args.batches or min(args.batches) < 1:
            parser.error("--repeats and every batch size must be at least 1")
        if not args.dtypes or set(args.dtypes) - set(DTYPES):
            parser.error(f"--dtypes must be among {', '.join(DTYPES)}")
        return matrix(args)
    import torch

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="mistudio-peers-") as scratch:
        scratch = Path(scratch)
        build(scratch / "model")
        loaded = load(scratch / "model", args.quantization)
        short = dataset(loaded.tokenizer, args.samples, 10, 60, seed=1)
        long = dataset(loaded.tokenizer, args.long_samples, CONTEXT + 20, CONTEXT + 80, seed=2)
        limit(loaded, short[:64])  # warm-up
        results = [compare(loaded, "short", short, scratch), compare(loaded, "long", long, scratch)]
        one = peak_rss(scratch / "model", args.memory_samples, args.quantization)
        ten = peak_rss(scratch / "model", 10 * args.memory_samples, args.quantization)

    loaded_as = f", format {loaded.effective_format.upper()}" if args.quantization else ""
    print(
        f"pythia-70m-shaped GPT-NeoX (random){loaded_as}, CPU x{torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"layers {LAYERS} x {HOOKS}, context {CONTEXT}, batch {BATCH}\n"
    )
    print("| dataset | run | samples/s | real tokens/s | vs limit | vs nnsight |")
    print("|---|---|---|---|---|---|")
    for result in results:
        seconds = result["seconds"]
        for run in ("limit", "engine", "nnsight"):
            print(
                f"| {result['dataset']} ({result['samples']}, {result['real_tokens'] / result['samples']:.0f} tokens avg) "
                f"| {run} | {result['samples'] / seconds[run]:.1f} | {result['real_tokens'] / seconds[run]:.0f} "
                f"| {seconds['limit'] / seconds[run]:.2f}x | {seconds['nnsight'] / seconds[run]:.2f}x |"
            )
    print(
        f"\nEngine peak RSS: {args.memory_samples} short samples {one / 1024:.0f} MiB; "
        f"{10 * args.memory_samples} samples {ten / 1024:.0f} MiB ({100 * (ten - one) / one:+.1f}%)"
    )
    if args.json:
        args.json.write_text(json.dumps({"results": results, "peak_rss_kib": [one, ten]}, indent=2))


if __name__ == "__main__":
    main()
