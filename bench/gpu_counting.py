"""How a GPU should count float16 statistics: the ways of adding a batch's 65,536 bit-pattern
counts (sort-based index_put_, atomic scatter_add_, bincount, histc) and of the token norms'
float64 sum, timed alone on real activations and inside the engine (checkpoints and writes off).

    python bench/gpu_counting.py --json $OUT/gpu_counting.json      # CUDA only
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

PATTERNS = 1 << 16


def by_index_put(counts, patterns):
    one = torch.ones((), dtype=torch.int64, device=patterns.device).expand(patterns.numel())
    counts.index_put_((patterns.long(),), one, accumulate=True)


def by_scatter_add(counts, patterns):
    one = torch.ones((), dtype=torch.int64, device=patterns.device).expand(patterns.numel())
    counts.scatter_add_(0, patterns.long(), one)


def by_bincount(counts, patterns):
    counts += torch.bincount(patterns, minlength=PATTERNS)


def by_histc(counts, patterns):  # float32 counts are exact up to 2**24 a piece
    counts += torch.histc(patterns.float(), bins=PATTERNS, min=0, max=PATTERNS - 1).long()


COUNTERS = {f.__name__: f for f in (by_index_put, by_scatter_add, by_bincount, by_histc)}


def norms_copy(values):
    return torch.linalg.vector_norm(values.to(torch.float64), dim=-1).sum()


def norms_in_kernel(values):
    return torch.linalg.vector_norm(values, dim=-1, dtype=torch.float64).sum()


def median_ms(step, repeats: int = 20) -> float:
    times = []
    if not torch.cuda.is_available():  # the code path only
        for _ in range(repeats + 3):
            start = time.perf_counter()
            step()
            times.append(1e3 * (time.perf_counter() - start))
        return sorted(times[3:])[repeats // 2]
    for _ in range(repeats + 3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times[3:])[repeats // 2]


def patched_update(counter, norms):
    def update(self, values):
        patterns = values.reshape(-1).view(torch.int16).to(torch.int32) + (PATTERNS // 2)
        counter(self.counts, patterns)
        self.l2 += norms(values)
        self.tokens += values.shape[0]

    return update


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--shape", default="tinyllama", help="tiny: a smoke run on the CPU")
    parser.add_argument("--samples", type=int, default=1024)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    from extraction import build, load, texts
    from gpu_profile import timed

    from models_app.ml import stats

    results: dict = {"alone_ms": {}, "engine_samples_per_second": {}}
    with tempfile.TemporaryDirectory(prefix="mistudio-counting-") as scratch:
        scratch = Path(scratch)
        build(scratch / "model", args.shape)
        loaded = load(scratch / "model", device)
        loaded.tokenizer.pad_token = loaded.tokenizer.pad_token or loaded.tokenizer.eos_token
        ids = loaded.tokenizer(
            texts(64, 160), return_tensors="pt", truncation=True, max_length=128, padding=True
        )
        n = loaded.model.config.num_hidden_layers
        with torch.inference_mode():
            hidden = loaded.model(**ids.to(device), output_hidden_states=True).hidden_states[n // 2]
        values = hidden.reshape(-1, hidden.shape[-1]).to(torch.float16).contiguous()  # [8192, 2048]
        patterns = values.reshape(-1).view(torch.int16).to(torch.int32) + (PATTERNS // 2)
        reference = torch.zeros(PATTERNS, dtype=torch.int64, device=device)
        by_index_put(reference, patterns)
        for name, counter in COUNTERS.items():
            counts = torch.zeros(PATTERNS, dtype=torch.int64, device=device)
            counter(counts, patterns)
            exact = bool(torch.equal(counts, reference))
            ms = median_ms(lambda counter=counter, counts=counts: counter(counts, patterns))
            results["alone_ms"][name] = {"ms": ms, "exact": exact}
        for norms in (norms_copy, norms_in_kernel):
            results["alone_ms"][norms.__name__] = {"ms": median_ms(lambda norms=norms: norms(values))}
        original = stats._ValueCounts.update
        samples = texts(args.samples, 160)

        class Args:
            batch_size, context, dtype = 64, 128, "float16"

        try:
            for name in ("by_index_put", "by_scatter_add", "by_histc"):
                for norms in (norms_copy, norms_in_kernel):
                    stats._ValueCounts.update = patched_update(COUNTERS[name], norms)
                    out = scratch / f"{name}-{norms.__name__}"
                    rate = timed(loaded, samples, Args, [0, n // 2, n - 1], out, {"checkpoints", "writes"})
                    results["engine_samples_per_second"][f"{name} + {norms.__name__}"] = rate
        finally:
            stats._ValueCounts.update = original
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
