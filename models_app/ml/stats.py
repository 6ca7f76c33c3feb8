"""Streaming statistics of one activation tensor over real (unpadded) tokens, kept on the
activations' device.

Each batch is reduced with masked tensor operations and merged with Chan's parallel algorithm in
float64, so the result equals numpy's over all real tokens at once, whatever the batches, while
memory stays one batch. Nothing here reads a value back to the host until `summary()` (the
histogram's range, once, on the first batch): on a GPU the forward pass of the next batch is not
held up waiting for statistics.
"""
from __future__ import annotations

import math

import torch

NEAR_ZERO = 0.01  # |x| below this counts towards sparsity
HISTOGRAM_BINS = 40
HISTOGRAM_MARGIN = 0.25  # the first batch's range, widened by this share on each side


def _zero(device: torch.device) -> torch.Tensor:
    return torch.zeros((), dtype=torch.float64, device=device)


class RunningStats:
    def __init__(self) -> None:
        self.count = 0   # values (tokens x hidden)
        self.tokens = 0
        self.histogram: Histogram | None = None
        self._sums: dict[str, torch.Tensor] | None = None

    def update(self, acts: torch.Tensor, mask: torch.Tensor, tokens: int) -> None:
        """`acts`: [batch, seq, hidden] in the dtype the file stores; `mask`: [batch, seq], true
        on real tokens; `tokens`: how many are real (known on the host from tokenization)."""
        if tokens == 0:
            return
        x = acts.to(torch.float64)
        real = mask.bool().unsqueeze(-1)
        n = tokens * x.shape[-1]
        if self._sums is None:
            self._sums = {name: _zero(x.device) for name in ("mean", "m2", "abs", "near_zero", "l2")}
            self._sums["min"] = torch.full((), math.inf, dtype=torch.float64, device=x.device)
            self._sums["max"] = torch.full((), -math.inf, dtype=torch.float64, device=x.device)
            self.histogram = Histogram.spanning(x, real)
        sums = self._sums
        kept = torch.where(real, x, 0.0)
        batch_mean = kept.sum() / n
        batch_m2 = torch.where(real, x - batch_mean, 0.0).square().sum()
        delta = batch_mean - sums["mean"]
        total = self.count + n
        sums["mean"] = sums["mean"] + delta * (n / total)
        sums["m2"] = sums["m2"] + batch_m2 + delta * delta * (self.count * n / total)
        self.count, self.tokens = total, self.tokens + tokens
        sums["abs"] += kept.abs().sum()
        sums["min"] = torch.minimum(sums["min"], torch.where(real, x, math.inf).amin())
        sums["max"] = torch.maximum(sums["max"], torch.where(real, x, -math.inf).amax())
        sums["near_zero"] += ((x.abs() < NEAR_ZERO) & real).sum()
        sums["l2"] += torch.where(mask.bool(), torch.linalg.vector_norm(kept, dim=-1), 0.0).sum()
        self.histogram.update(x, real)

    def summary(self) -> dict[str, float | int | dict | None]:
        if self.count == 0 or self._sums is None:
            return {"tokens": 0, "mean": None, "mean_abs": None, "std": None, "min": None,
                    "max": None, "sparsity_percent": None, "l2_norm_mean": None, "histogram": None}
        sums = {name: value.item() for name, value in self._sums.items()}
        return {
            "tokens": self.tokens,
            "mean": sums["mean"],
            "mean_abs": sums["abs"] / self.count,
            "std": math.sqrt(sums["m2"] / self.count) if sums["m2"] >= 0 else None,
            "min": sums["min"],
            "max": sums["max"],
            "sparsity_percent": 100.0 * sums["near_zero"] / self.count,
            "l2_norm_mean": sums["l2"] / self.tokens,
            "histogram": self.histogram.summary(),
        }


class Histogram:
    """Counts of values in fixed bins. The bins are fixed by the first batch (its range, widened
    by a margin) so that later batches merge by adding counts, like the other statistics; values
    outside the bins are counted as below / above rather than stretched into the end bins, and
    inf / NaN (float16 overflow) as non-finite, so one of them cannot make the bins infinite."""

    def __init__(self, low: float, high: float, device: torch.device, bins: int = HISTOGRAM_BINS):
        self.low, self.high = low, high
        self.counts = torch.zeros(bins, dtype=torch.float64, device=device)
        self.below, self.above, self.nonfinite = _zero(device), _zero(device), _zero(device)

    @classmethod
    def spanning(cls, x: torch.Tensor, real: torch.Tensor) -> "Histogram":
        finite = real & torch.isfinite(x)
        low = torch.where(finite, x, math.inf).amin().item()
        high = torch.where(finite, x, -math.inf).amax().item()
        if not math.isfinite(low):  # no finite value at all
            low, high = -1.0, 1.0
        margin = (high - low) * HISTOGRAM_MARGIN or max(abs(low), 1.0) * HISTOGRAM_MARGIN
        return cls(low - margin, high + margin, x.device)

    def update(self, x: torch.Tensor, real: torch.Tensor) -> None:
        bins = self.counts.numel()
        finite = real & torch.isfinite(x)
        inside = finite & (x >= self.low) & (x <= self.high)
        scaled = torch.nan_to_num((x - self.low) / (self.high - self.low) * bins, nan=0.0, posinf=0.0, neginf=0.0)
        index = scaled.clamp_(0, bins - 1).long()
        self.counts.scatter_add_(0, index.reshape(-1), inside.reshape(-1).to(torch.float64))
        self.below += (finite & (x < self.low)).sum()
        self.above += (finite & (x > self.high)).sum()
        self.nonfinite += (real & ~torch.isfinite(x)).sum()

    def summary(self) -> dict:
        bins = self.counts.numel()
        width = (self.high - self.low) / bins
        return {"edges": [self.low + i * width for i in range(bins)] + [self.high],
                "counts": [int(c) for c in self.counts.tolist()],
                "below": int(self.below.item()), "above": int(self.above.item()),
                "nonfinite": int(self.nonfinite.item())}


class RunningTopK:
    """For every neuron, the K highest activations seen and their (sample, token) positions."""

    def __init__(self, k: int, hidden: int, device: torch.device | str):
        self.k = k
        self.values = torch.full((0, hidden), -math.inf, device=device)
        self.samples = torch.zeros((0, hidden), dtype=torch.long, device=device)
        self.tokens = torch.zeros((0, hidden), dtype=torch.long, device=device)

    def update(self, acts: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor) -> None:
        """`acts`: [batch, seq, hidden] (file dtype); `mask`: [batch, seq] with 1 on real tokens;
        `rows`: [batch], each row's sample index in the files."""
        batch, seq, hidden = acts.shape
        flat = acts.float().masked_fill(~mask.bool().unsqueeze(-1), -math.inf).reshape(-1, hidden)
        k = min(self.k, flat.shape[0])
        values, index = flat.topk(k, dim=0)
        samples = rows[torch.div(index, seq, rounding_mode="floor")]
        tokens = index % seq
        merged = torch.cat([self.values, values])
        keep = min(self.k, merged.shape[0])
        self.values, order = merged.topk(keep, dim=0)
        self.samples = torch.cat([self.samples, samples]).gather(0, order)
        self.tokens = torch.cat([self.tokens, tokens]).gather(0, order)

    def arrays(self) -> dict[str, "numpy.ndarray"]:  # noqa: F821
        """values/samples/tokens as [hidden, K] arrays; missing entries (fewer real tokens than
        K) have value -inf and position -1."""
        valid = torch.isfinite(self.values)
        return {
            "values": self.values.T.cpu().numpy(),
            "sample_index": torch.where(valid, self.samples, -1).T.cpu().numpy(),
            "token_index": torch.where(valid, self.tokens, -1).T.cpu().numpy(),
        }
