"""Streaming statistics of one activation tensor over real (unpadded) tokens.

Batches are reduced on the device and merged with Chan's parallel algorithm in float64, so the
result equals numpy's over all real tokens at once, whatever the batch size, while memory stays
one batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

NEAR_ZERO = 0.01  # |x| below this counts towards sparsity
HISTOGRAM_BINS = 40
HISTOGRAM_MARGIN = 0.25  # the first batch's range, widened by this share on each side


@dataclass
class RunningStats:
    count: int = 0          # values (tokens x hidden)
    tokens: int = 0
    mean: float = 0.0
    m2: float = 0.0         # sum of squared deviations from the mean
    abs_sum: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf
    near_zero: int = 0
    l2_sum: float = 0.0     # sum over tokens of each token vector's L2 norm
    histogram: "Histogram | None" = None

    def update(self, values: torch.Tensor) -> None:
        """`values`: [tokens, hidden] of real tokens only, in the dtype the file stores."""
        if values.numel() == 0:
            return
        x = values.to(torch.float64)
        if self.histogram is None:
            self.histogram = Histogram.spanning(x)
        self.histogram.update(x)
        n = x.numel()
        batch_mean = x.mean().item()
        batch_m2 = ((x - batch_mean) ** 2).sum().item()
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta * delta * self.count * n / total
        self.count = total
        self.tokens += x.shape[0]
        self.abs_sum += x.abs().sum().item()
        self.minimum = min(self.minimum, x.min().item())
        self.maximum = max(self.maximum, x.max().item())
        self.near_zero += int((x.abs() < NEAR_ZERO).sum().item())
        self.l2_sum += torch.linalg.vector_norm(x, dim=-1).sum().item()

    def summary(self) -> dict[str, float | int]:
        if self.count == 0:
            return {"tokens": 0, "mean": None, "mean_abs": None, "std": None, "min": None,
                    "max": None, "sparsity_percent": None, "l2_norm_mean": None}
        return {
            "tokens": self.tokens,
            "mean": self.mean,
            "mean_abs": self.abs_sum / self.count,
            "std": math.sqrt(self.m2 / self.count),
            "min": self.minimum,
            "max": self.maximum,
            "sparsity_percent": 100.0 * self.near_zero / self.count,
            "l2_norm_mean": self.l2_sum / self.tokens,
            "histogram": self.histogram.summary(),
        }


@dataclass
class Histogram:
    """Counts of values in fixed bins. The bins are fixed by the first batch (its range, widened
    by a margin) so that later batches merge by adding counts, like the other statistics; values
    outside the bins are counted as below / above rather than stretched into the end bins, and
    inf / NaN (float16 overflow) as non-finite, so one of them cannot make the bins infinite."""
    low: float
    high: float
    counts: torch.Tensor
    below: int = 0
    above: int = 0
    nonfinite: int = 0

    @classmethod
    def spanning(cls, x: torch.Tensor, bins: int = HISTOGRAM_BINS) -> "Histogram":
        finite = x[torch.isfinite(x)]
        low, high = (finite.min().item(), finite.max().item()) if finite.numel() else (-1.0, 1.0)
        margin = (high - low) * HISTOGRAM_MARGIN or max(abs(low), 1.0) * HISTOGRAM_MARGIN
        return cls(low - margin, high + margin, torch.zeros(bins, dtype=torch.float64))

    def update(self, x: torch.Tensor) -> None:
        bins = self.counts.numel()
        finite = torch.isfinite(x)
        inside = finite & (x >= self.low) & (x <= self.high)
        index = ((x[inside] - self.low) / (self.high - self.low) * bins).long().clamp_(0, bins - 1)
        self.counts += torch.bincount(index, minlength=bins).to(self.counts).cpu()
        self.below += int((finite & (x < self.low)).sum().item())
        self.above += int((finite & (x > self.high)).sum().item())
        self.nonfinite += int((~finite).sum().item())

    def summary(self) -> dict:
        bins = self.counts.numel()
        width = (self.high - self.low) / bins
        return {"edges": [self.low + i * width for i in range(bins)] + [self.high],
                "counts": [int(c) for c in self.counts.tolist()],
                "below": self.below, "above": self.above, "nonfinite": self.nonfinite}


class RunningTopK:
    """For every neuron, the K highest activations seen and their (sample, token) positions."""

    def __init__(self, k: int, hidden: int, device: torch.device | str):
        self.k = k
        self.values = torch.full((0, hidden), -math.inf, device=device)
        self.samples = torch.zeros((0, hidden), dtype=torch.long, device=device)
        self.tokens = torch.zeros((0, hidden), dtype=torch.long, device=device)

    def update(self, acts: torch.Tensor, mask: torch.Tensor, first_sample: int) -> None:
        """`acts`: [batch, seq, hidden] (file dtype); `mask`: [batch, seq] with 1 on real tokens."""
        batch, seq, hidden = acts.shape
        flat = acts.float().masked_fill(~mask.bool().unsqueeze(-1), -math.inf).reshape(-1, hidden)
        k = min(self.k, flat.shape[0])
        values, index = flat.topk(k, dim=0)
        samples = first_sample + torch.div(index, seq, rounding_mode="floor")
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
