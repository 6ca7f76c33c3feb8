"""The histograms of ml/stats.py: fixed bins over the first batch's range, widened by a margin, so
that later batches merge by adding counts; values outside the bins are counted below or above,
and inf / NaN apart."""

from __future__ import annotations

import math

import numpy as np
import torch

HISTOGRAM_BINS = 40
HISTOGRAM_MARGIN = 0.25  # the first batch's range, widened by this share on each side


def zero(device: torch.device) -> torch.Tensor:
    return torch.zeros((), dtype=torch.float64, device=device)


def bins_around(low: float, high: float) -> tuple[float, float]:
    if not math.isfinite(low):  # no finite value at all
        low, high = -1.0, 1.0
    margin = (high - low) * HISTOGRAM_MARGIN or max(abs(low), 1.0) * HISTOGRAM_MARGIN
    return low - margin, high + margin


def float32_outward(low: float, high: float) -> tuple[float, float]:
    """The nearest float32 numbers at or outside [low, high]: a float32 value then compares with
    them exactly in its own precision."""
    with np.errstate(over="ignore"):
        low32, high32 = np.float32(low), np.float32(high)
    if not (np.isfinite(low32) and np.isfinite(high32)):  # beyond float32: the bins stay as they are
        return low, high
    if low32 > low:
        low32 = np.nextafter(low32, np.float32(-np.inf))
    if high32 < high:
        high32 = np.nextafter(high32, np.float32(np.inf))
    return float(low32), float(high32)


def edges(low: float, high: float, bins: int) -> list[float]:
    width = (high - low) / bins
    return [low + i * width for i in range(bins)] + [high]


class CountedHistogram:
    """The histogram of _ValueCounts: bins fixed by the first batch, filled from the counts."""

    def __init__(self, low: float, high: float, bins: int = HISTOGRAM_BINS):
        self.low, self.high, self.bins = low, high, bins

    def summary(self, counts: np.ndarray, numbers: np.ndarray) -> dict:
        finite = np.isfinite(numbers)
        inside = finite & (numbers >= self.low) & (numbers <= self.high)
        index = np.minimum(
            ((numbers[inside] - self.low) / (self.high - self.low) * self.bins).astype(np.int64),
            self.bins - 1,
        )
        return {
            "edges": edges(self.low, self.high, self.bins),
            "counts": [int(c) for c in np.bincount(index, weights=counts[inside], minlength=self.bins)],
            "below": int(counts[finite & (numbers < self.low)].sum()),
            "above": int(counts[finite & (numbers > self.high)].sum()),
            "nonfinite": int(counts[~finite].sum()),
        }


class Histogram:
    """Counts of values in fixed bins. The bins are fixed by the first batch (its range, widened
    by a margin) so that later batches merge by adding counts, like the other statistics; values
    outside the bins are counted as below / above rather than stretched into the end bins, and
    inf / NaN (float16 overflow) as non-finite, so one of them cannot make the bins infinite."""

    def __init__(self, low: float, high: float, device: torch.device, bins: int = HISTOGRAM_BINS):
        self.low, self.high = low, high
        self.counts = torch.zeros(bins, dtype=torch.float64, device=device)
        self.below, self.nonfinite = zero(device), zero(device)
        self.values = 0

    @classmethod
    def around(cls, low: float, high: float, device: torch.device) -> Histogram:
        """Bins over [low, high] (the first batch's finite range), widened by the margin."""
        return cls(*float32_outward(*bins_around(low, high)), device)

    def state(self) -> dict:
        return {
            "bins": (self.low, self.high),
            "counts": self.counts.detach().cpu().clone(),
            "below": self.below.detach().cpu().clone(),
            "nonfinite": self.nonfinite.detach().cpu().clone(),
            "values": self.values,
        }

    @classmethod
    def restored(cls, state: dict, device: torch.device) -> Histogram:
        low, high = state["bins"]
        histogram = cls(low, high, device, bins=state["counts"].numel())
        # Copies: the counts are added to in place, and the state may be restored again.
        histogram.counts = state["counts"].to(device, copy=True)
        histogram.below = state["below"].to(device, copy=True)
        histogram.nonfinite = state["nonfinite"].to(device, copy=True)
        histogram.values = state["values"]
        return histogram

    def fits_slots(self) -> bool:
        """Whether a bin's number fits the uint8 slots of ml/kernels.py."""
        return self.counts.numel() <= 256

    def add(self, counted: np.ndarray, below: int, values: int) -> None:
        """Adds a batch counted elsewhere (ml/kernels.py, on the CPU): its counts per bin of
        the values inside the bins, how many were below them, and how many values it had
        (those above are the rest)."""
        # Through numpy views of the CPU tensors: a torch operation costs more than these adds.
        counts, below_count = self.counts.numpy(), self.below.numpy()
        counts += counted
        below_count += below
        self.values += values

    def update(self, x: torch.Tensor) -> None:
        # histc counts the values inside [low, high] and passes over the rest, inf and NaN too.
        self.counts += torch.histc(x, bins=self.counts.numel(), min=self.low, max=self.high)
        finite = torch.isfinite(x)
        self.below += ((x < self.low) & finite).sum()
        self.nonfinite += x.numel() - finite.sum()
        self.values += x.numel()

    def summary(self) -> dict:
        counts = [int(c) for c in self.counts.tolist()]
        below, nonfinite = int(self.below.item()), int(self.nonfinite.item())
        return {
            "edges": edges(self.low, self.high, len(counts)),
            "counts": counts,
            "below": below,
            "above": self.values - sum(counts) - below - nonfinite,
            "nonfinite": nonfinite,
        }
