"""The studio's download phase against a bare `snapshot_download` of the same files.

    .venv/bin/python bench/download.py                 # the table in bench/README.md (a 1.1 GB checkpoint)
    .venv/bin/python bench/download.py --layers 2      # a quick run

Builds a random Llama checkpoint in float16 (hidden 2048, intermediate 5632, 10 layers, vocabulary
32000: 571M parameters, about 1.1 GB in one safetensors file) with a real tokenizer, serves it
from the local Hub-protocol server (tests/hubserver.py) on 127.0.0.1, and times, alternately,
--rounds times each into an empty cache:
- the studio: `models_app.ml.download_process.download_in_child`, the very path a download job runs (a
  child process, huggingface_hub's hf_hub_download per file, progress reported as JSON lines);
- bare: `huggingface_hub.snapshot_download` of the same repository and commit.
The best round of each is compared. Target: the studio at >= 0.9x bare's throughput.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(folder: Path, layers: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from tests.tinymodels import build_tokenizer

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=layers,
        num_attention_heads=32,
        num_key_value_heads=4,
        vocab_size=32000,
        max_position_embeddings=2048,
    )
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float16)
    model.save_pretrained(folder, max_shard_size="20GB")
    build_tokenizer(folder)


def studio(pre, cache: Path, endpoint: str) -> float:
    from models_app.ml import download_process

    start = time.perf_counter()
    download_process.download_in_child(pre, cache, endpoint=endpoint)
    return time.perf_counter() - start


def bare(repo_id: str, commit: str, cache: Path, endpoint: str) -> float:
    from huggingface_hub import snapshot_download

    start = time.perf_counter()
    snapshot_download(repo_id, revision=commit, cache_dir=cache, endpoint=endpoint)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from models_app.ml import hub
    from tests.hubserver import HubServer

    with tempfile.TemporaryDirectory(prefix="mistudio-download-") as scratch:
        scratch = Path(scratch)
        build(scratch / "repo", args.layers)
        size = sum(p.stat().st_size for p in (scratch / "repo").iterdir())
        server = HubServer().start()
        server.add("bench/random-llama", scratch / "repo")
        try:
            pre = hub.preflight("bench/random-llama", endpoint=server.endpoint)
            times = {"studio": [], "bare": []}
            for _ in range(args.rounds):
                for name in ("bare", "studio"):
                    cache = scratch / f"cache-{name}"
                    shutil.rmtree(cache, ignore_errors=True)
                    seconds = (
                        studio(pre, cache, server.endpoint)
                        if name == "studio"
                        else bare(pre.repo_id, pre.commit_sha, cache, server.endpoint)
                    )
                    times[name].append(seconds)
                    shutil.rmtree(cache, ignore_errors=True)
        finally:
            server.stop()

    best = {name: min(values) for name, values in times.items()}
    print(
        f"random Llama, {args.layers} layers, {size / 1e9:.2f} GB from the local Hub-protocol server; "
        f"best of {args.rounds}\n"
    )
    print("| run | seconds | MB/s | vs bare |")
    print("|---|---|---|---|")
    for name in ("bare", "studio"):
        print(
            f"| {name} | {best[name]:.2f} | {size / best[name] / 1e6:.0f} | {best['bare'] / best[name]:.2f}x |"
        )
    print(
        f"\nAll rounds (s): bare {', '.join(f'{t:.2f}' for t in times['bare'])}; "
        f"studio {', '.join(f'{t:.2f}' for t in times['studio'])}"
    )


if __name__ == "__main__":
    main()
