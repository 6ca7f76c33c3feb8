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


def load(folder: Path):
    from models_app.ml import loading

    return loading.load(folder, "fp32", device="cpu")


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


def limit(loaded, texts: list[str]) -> float:
    """Seconds of bare forward passes to the deepest layer over length-sorted batches."""
    from extraction import bare_forward

    return len(texts) / bare_forward(loaded, texts, BATCH, CONTEXT, deepest=max(LAYERS))


def engine(loaded, texts: list[str], out: Path) -> float:
    from models_app.ml.extraction import ExtractionSettings, extract

    settings = ExtractionSettings(layers=LAYERS, hooks=HOOKS, batch_size=BATCH, context_length=CONTEXT)
    start = time.perf_counter()
    extract(loaded.model, loaded.tokenizer, texts, settings, out)
    return time.perf_counter() - start


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
    loaded = load(args.model)
    texts = dataset(loaded.tokenizer, args.samples, 10, 60, seed=3)
    with tempfile.TemporaryDirectory(prefix="mistudio-peers-") as out:
        engine(loaded, texts, Path(out))
    print(json.dumps({"peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def peak_rss(model: Path, samples: int) -> int:
    result = subprocess.run(
        [sys.executable, __file__, "--child", "--model", str(model), "--samples", str(samples)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_rss_kib"]


def compare(loaded, name: str, texts: list[str], scratch: Path) -> dict:
    tokens = real_tokens(loaded.tokenizer, texts)
    seconds = {
        "limit": limit(loaded, texts),
        "engine": engine(loaded, texts, scratch / name),
        "nnsight": nnsight_run(loaded, texts),
    }
    return {"dataset": name, "samples": len(texts), "real_tokens": tokens, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=2000, help="short texts")
    parser.add_argument("--long-samples", type=int, default=400, help="long texts")
    parser.add_argument("--memory-samples", type=int, default=500)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return memory_child(args)
    import torch

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="mistudio-peers-") as scratch:
        scratch = Path(scratch)
        build(scratch / "model")
        loaded = load(scratch / "model")
        short = dataset(loaded.tokenizer, args.samples, 10, 60, seed=1)
        long = dataset(loaded.tokenizer, args.long_samples, CONTEXT + 20, CONTEXT + 80, seed=2)
        limit(loaded, short[:64])  # warm-up
        results = [compare(loaded, "short", short, scratch), compare(loaded, "long", long, scratch)]
        one = peak_rss(scratch / "model", args.memory_samples)
        ten = peak_rss(scratch / "model", 10 * args.memory_samples)

    print(
        f"pythia-70m-shaped GPT-NeoX (random), CPU x{torch.get_num_threads()} threads, torch {torch.__version__}; "
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
