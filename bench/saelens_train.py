"""SAELens trains a sparse autoencoder from the studio's "saelens" export, offline.

    make bench-install && .venv/bin/python bench/saelens_train.py     # the table in bench/README.md
    .venv/bin/python bench/saelens_train.py --training-tokens 65536  # longer

1. A tiny random Llama (tests/tinymodels.py: 2 layers, hidden 128, a real BPE tokenizer) saved to
   a local folder, run by the studio's engine (models_app.ml.extraction.extract) over a few dozen
   texts: layer 1 x residual + mlp, float16 files.
2. The studio's export code writes the "saelens" directory from that extraction
   (models_app.ml.exports.export("saelens", ...): both hooks as columns, rows of --context tokens,
   shuffled with a seed).
3. SAELens' own runner trains a standard SAE on one column of it:
   LanguageModelSAETrainingRunner(LanguageModelSAERunnerConfig(use_cached_activations=True,
   cached_activations_path=DIR, hook_name=the column, ...), override_dataset=the export's
   token_ids). The runner loads the model named in model_name (here the local folder, so nothing
   is fetched) and checks hook_name against it, but every activation it trains on is read from the
   directory: the model's forward passes are counted and must be 0.
Printed: JSON with the figures. The run fails (non-zero exit) if SAELens cannot read the export,
trains no step, runs the model, or ends with a reconstruction error no lower than it started with.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

# No network: the Hub (model, tokenizer, datasets) and W&B are never reached.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TQDM_DISABLE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LAYER = 1
KEYS = [f"layer_{LAYER}_residual", f"layer_{LAYER}_mlp"]
WORDS = [
    "residual",
    "stream",
    "attention",
    "heads",
    "move",
    "information",
    "sparse",
    "autoencoders",
    "decompose",
    "activations",
    "into",
    "interpretable",
    "features",
    "the",
    "quick",
    "brown",
    "fox",
    "layer",
    "token",
    "neural",
    "networks",
]


class BenchFailed(SystemExit):
    def __init__(self, message: str):
        super().__init__(f"saelens_train: {message}")


def texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))) for _ in range(count)]


def extract_and_export(scratch: Path, args) -> tuple[Path, Path, dict, float]:
    """The tiny model's folder, the export directory, its manifest, and the seconds both took."""
    from models_app.ml import extraction, loading
    from models_app.ml.exports import export
    from tests.tinymodels import build_model

    start = time.perf_counter()
    model_dir = build_model("llama", scratch / "model")
    loaded = loading.load(model_dir, "fp32", device="cpu")
    settings = extraction.ExtractionSettings(
        layers=[LAYER], hooks=["residual", "mlp"], batch_size=8, context_length=args.context, dtype="float16"
    )
    extraction.extract(
        loaded.model,
        loaded.tokenizer,
        texts(args.samples),
        settings,
        scratch / "extraction",
        metadata={"model": {"repo_id": "tiny/llama"}, "dataset": {"name": "bench texts"}},
    )
    out = scratch / "saelens-export"
    manifest = export(
        "saelens", scratch / "extraction", out, hooks=KEYS, context_size=args.context, shuffle_seed=0
    )
    return model_dir, out, manifest, time.perf_counter() - start


def reconstruction_mse(sae, acts) -> float:
    """SAELens' training MSE (squared error summed over d_in, mean over tokens) on `acts`."""
    import torch

    with torch.no_grad():
        return float((sae(acts) - acts).pow(2).sum(-1).mean())


def train(model_dir: Path, export_dir: Path, hook_name: str, d_in: int, args) -> dict:
    import sae_lens
    from datasets import load_from_disk
    from sae_lens import (
        LanguageModelSAERunnerConfig,
        LanguageModelSAETrainingRunner,
        LoggingConfig,
        StandardTrainingSAEConfig,
    )

    start = time.perf_counter()
    cfg = LanguageModelSAERunnerConfig(
        sae=StandardTrainingSAEConfig(d_in=d_in, d_sae=args.expansion * d_in, l1_coefficient=args.l1),
        model_class_name="AutoModelForCausalLM",
        model_name=str(model_dir),  # the model the export came from: here a local folder
        hook_name=hook_name,  # the export's column: the hook's module path
        context_size=args.context,
        use_cached_activations=True,
        cached_activations_path=str(export_dir),
        training_tokens=args.training_tokens,
        train_batch_size_tokens=args.batch_tokens,
        store_batch_size_prompts=args.rows_per_read,
        n_batches_in_buffer=8,
        lr=args.lr,
        device="cpu",
        dtype="float32",
        seed=0,
        logger=LoggingConfig(log_to_wandb=False),
        checkpoint_path=None,
        output_path=str(export_dir.parent / "sae"),
        verbose=False,
    )
    # The runner wants a token dataset besides the cache (it reads none of it when the cache is
    # used); the export's own token_ids, under the column name SAELens looks for.
    tokens = (
        load_from_disk(str(export_dir)).select_columns(["token_ids"]).rename_column("token_ids", "tokens")
    )
    runner = LanguageModelSAETrainingRunner(cfg, override_dataset=tokens)
    setup_seconds = time.perf_counter() - start

    forward_passes = []
    runner.model.model.register_forward_pre_hook(lambda *_: forward_passes.append(1))
    steps: list[dict[str, float]] = []
    step = runner.sae.training_forward_pass

    def recorded(step_input):
        output = step(step_input)
        losses = {"loss": output.loss, **output.losses}
        steps.append({k: float(v.detach()) for k, v in losses.items()})
        return output

    runner.sae.training_forward_pass = recorded  # type: ignore[method-assign]

    # The whole cache as SAELens' store reads it (float32 torch tensors): the fixed set the
    # reconstruction error is measured on before and after training.
    store = runner.activations_store.cached_activation_dataset
    all_acts = store[:][hook_name].reshape(-1, d_in)
    mse_before = reconstruction_mse(runner.sae, all_acts)

    start = time.perf_counter()
    sae = runner.run()
    train_seconds = time.perf_counter() - start
    mse_after = reconstruction_mse(sae, all_acts)

    if not steps:
        raise BenchFailed("SAELens trained no step from the export")
    if forward_passes:
        raise BenchFailed(
            f"the model ran {len(forward_passes)} forward passes: activations not from the cache"
        )
    if not all(math.isfinite(v) for s in steps for v in s.values()) or not math.isfinite(mse_after):
        raise BenchFailed(f"non-finite losses: first {steps[0]}, last {steps[-1]}, cache MSE {mse_after}")
    if not mse_after < mse_before:
        raise BenchFailed(f"the reconstruction error did not fall: {mse_before} -> {mse_after}")
    variance = float(all_acts.var(0).sum())
    saved = sorted(p.name for p in Path(cfg.output_path).iterdir())
    return {
        "sae_lens_version": sae_lens.__version__,
        "d_sae": sae.cfg.d_sae,
        "steps": len(steps),
        "tokens_trained": len(steps) * args.batch_tokens,
        "model_forward_passes": len(forward_passes),
        "first_step": steps[0],
        "last_step": steps[-1],
        "cache_mse_before": mse_before,
        "cache_mse_after": mse_after,
        "cache_variance": variance,
        "fraction_of_variance_unexplained_after": mse_after / variance,
        "saved": saved,
        "seconds_setup": setup_seconds,
        "seconds_train": train_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--context", type=int, default=32, help="extraction context and export row length")
    parser.add_argument("--hook", choices=KEYS, default=f"layer_{LAYER}_mlp", help="the column trained on")
    parser.add_argument("--training-tokens", type=int, default=8192)
    parser.add_argument("--batch-tokens", type=int, default=128, help="SAE batch (train_batch_size_tokens)")
    parser.add_argument("--rows-per-read", type=int, default=4, help="store_batch_size_prompts")
    parser.add_argument("--expansion", type=int, default=4, help="d_sae / d_in")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--l1", type=float, default=1e-3, help="l1_coefficient")
    parser.add_argument("--scratch", default=None, help="where the model, extraction and export go")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mistudio-bench-", dir=args.scratch) as scratch:
        model_dir, export_dir, manifest, export_seconds = extract_and_export(Path(scratch), args)
        hook = next(h for h in manifest["hooks"] if h["key"] == args.hook)
        figures = {
            "hook_name": hook["module"],
            "d_in": hook["hidden_size"],
            "context_size": manifest["context_size"],
            "rows": manifest["rows"],
            "export_tokens": manifest["tokens"],
            "export_columns": list(manifest["columns"].values()),
            "export_dtype": manifest["dtype"],
            "training_tokens": args.training_tokens,
            "train_batch_size_tokens": args.batch_tokens,
            "seconds_extract_and_export": export_seconds,
        }
        figures |= train(model_dir, export_dir, hook["module"], hook["hidden_size"], args)
    figures = {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}
    for key in ("first_step", "last_step"):
        figures[key] = {k: round(v, 4) for k, v in figures[key].items()}
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
