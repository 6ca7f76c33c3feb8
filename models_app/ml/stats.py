"""Streaming statistics of one activation tensor over real (unpadded) tokens, kept on the
activations' device: mean, mean |x|, std, min, max, sparsity (|x| < 0.01), mean L2 norm of the
token vectors, and a histogram.

Two exact ways, by the dtype the file stores:
- float16 (the default): every value is one of 65,536 bit patterns, so each batch only adds to a
  count per pattern (one pass); every statistic and the histogram are computed from those counts
  at the end, in float64, and equal numpy's over all real tokens at once.
- float32: each batch is reduced in float64 and merged with Chan's parallel algorithm, with the
  histogram counted batch by batch.
Memory stays one batch either way. Nothing is read back to the host until `summary()` (the
histogram's range, once, on the first batch): on a GPU the forward pass of the next batch is not
held up waiting for statistics.
"""

from __future__ import annotations

import math

import numpy as np
import torch

NEAR_ZERO = 0.01  # |x| below this counts towards sparsity
HISTOGRAM_BINS = 40
HISTOGRAM_MARGIN = 0.25  # the first batch's range, widened by this share on each side
PATTERNS = 1 << 16  # float16 bit patterns
# On the CPU a batch is counted in pieces of about this many float64 bytes (a copy of the piece
# and its passes stay in the cache): a quarter less time than whole batches of 4,096 tokens.
CPU_PIECE_BYTES = 4 << 20


def _zero(device: torch.device) -> torch.Tensor:
    return torch.zeros((), dtype=torch.float64, device=device)


def _bins_around(low: float, high: float) -> tuple[float, float]:
    if not math.isfinite(low):  # no finite value at all
        low, high = -1.0, 1.0
    margin = (high - low) * HISTOGRAM_MARGIN or max(abs(low), 1.0) * HISTOGRAM_MARGIN
    return low - margin, high + margin


class _Moments:
    """float32 values: moments merged batch by batch (Chan), histogram counted per batch."""

    def __init__(self) -> None:
        self.count = 0  # values (tokens x hidden)
        self.tokens = 0
        self.histogram: Histogram | None = None
        self._sums: dict[str, torch.Tensor] | None = None

    def update(self, values: torch.Tensor) -> None:
        """`values`: [tokens, hidden], real tokens only, in the dtype the file stores."""
        if values.numel() == 0:
            return
        if values.device.type == "cpu":
            low, high = torch.aminmax(values)  # NaN makes both NaN
            if math.isfinite(low.item()) and math.isfinite(high.item()):
                if self._sums is None:
                    self._begin(Histogram.around(low.item(), high.item(), values.device))
                self._update_finite_on_cpu(values, low, high)
                return
        x = values.to(torch.float64)
        n = x.numel()
        if self._sums is None:
            self._begin(Histogram.spanning(values.float()))
        sums = self._sums
        assert sums is not None  # begun above
        batch_mean = x.sum() / n
        batch_m2 = (x - batch_mean).square_().sum()
        delta = batch_mean - sums["mean"]
        total = self.count + n
        sums["mean"] = sums["mean"] + delta * (n / total)
        sums["m2"] = sums["m2"] + batch_m2 + delta * delta * (self.count * n / total)
        self.count, self.tokens = total, self.tokens + x.shape[0]
        magnitude = x.abs()
        sums["abs"] += magnitude.sum()
        sums["near_zero"] += (magnitude < NEAR_ZERO).sum()
        low, high = torch.aminmax(x)
        sums["min"] = torch.minimum(sums["min"], low)
        sums["max"] = torch.maximum(sums["max"], high)
        sums["l2"] += torch.linalg.vector_norm(x, dim=-1).sum()
        # Bin counts need no float64: float32 holds the file's float16 values exactly, and is
        # the faster pass.
        assert self.histogram is not None  # made with the sums, on the first batch
        self.histogram.update(values.float())

    def _begin(self, histogram: Histogram) -> None:
        """Zero sums, and the histogram whose bins the first batch fixed."""
        device = histogram.counts.device
        self._sums = {name: _zero(device) for name in ("mean", "m2", "abs", "near_zero", "l2")}
        self._sums["min"] = torch.full((), math.inf, dtype=torch.float64, device=device)
        self._sums["max"] = torch.full((), -math.inf, dtype=torch.float64, device=device)
        self.histogram = histogram

    def _update_finite_on_cpu(self, values: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> None:
        """`update` for a batch with no inf or NaN, on the CPU (where reading a number back costs
        nothing): the same sums from one float64 copy in a few passes, the comparisons counted by
        numpy (torch sums a boolean tensor several times slower). The batch's own m2 is
        sum(x^2) - sum(x)^2 / n: over all the values of a (layer, hook) the mean is small beside
        the spread, so nothing cancels that float64 would notice."""
        assert self._sums is not None and self.histogram is not None
        sums, n = self._sums, values.numel()
        x = values.to(torch.float64, copy=True)  # overwritten below: never the caller's tensor
        norms = torch.linalg.vector_norm(x, dim=-1)
        batch_sum = x.sum()
        batch_mean = batch_sum / n
        batch_m2 = (norms.square().sum() - batch_sum * batch_mean).clamp_(min=0)
        magnitude = x.abs_()
        delta = batch_mean - sums["mean"]
        total = self.count + n
        sums["mean"] = sums["mean"] + delta * (n / total)
        sums["m2"] = sums["m2"] + batch_m2 + delta * delta * (self.count * n / total)
        self.count, self.tokens = total, self.tokens + values.shape[0]
        sums["abs"] += magnitude.sum()
        sums["near_zero"] += int(np.count_nonzero(magnitude.numpy() < NEAR_ZERO))
        sums["min"] = torch.minimum(sums["min"], low.double())
        sums["max"] = torch.maximum(sums["max"], high.double())
        sums["l2"] += norms.sum()
        self.histogram.update_finite(values)

    def state(self) -> dict:
        assert self._sums is not None and self.histogram is not None  # saved after a first batch
        return {
            "way": "moments",
            "count": self.count,
            "tokens": self.tokens,
            "sums": {name: value.detach().cpu().clone() for name, value in self._sums.items()},
            "histogram": self.histogram.state(),
        }

    @classmethod
    def restored(cls, state: dict, device: torch.device) -> _Moments:
        way = cls()
        way.count, way.tokens = state["count"], state["tokens"]
        way._sums = {name: value.to(device) for name, value in state["sums"].items()}
        way.histogram = Histogram.restored(state["histogram"], device)
        return way

    def summary(self) -> dict[str, float | int | dict | None]:
        if self.count == 0 or self._sums is None:
            return {
                "tokens": 0,
                "mean": None,
                "mean_abs": None,
                "std": None,
                "min": None,
                "max": None,
                "sparsity_percent": None,
                "l2_norm_mean": None,
                "histogram": None,
            }
        sums = {name: value.item() for name, value in self._sums.items()}
        assert self.histogram is not None  # made with the sums, on the first batch
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


def _float32_outward(low: float, high: float) -> tuple[float, float]:
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


def _edges(low: float, high: float, bins: int) -> list[float]:
    width = (high - low) / bins
    return [low + i * width for i in range(bins)] + [high]


class RunningStats:
    """The statistics of one (layer, hook): see the module's docstring for the two ways."""

    def __init__(self) -> None:
        self._way: _Moments | _ValueCounts | None = None

    @property
    def histogram(self):
        return self._way.histogram if self._way is not None else None

    def update(self, values: torch.Tensor) -> None:
        """`values`: [tokens, hidden], real tokens only, in the dtype the file stores."""
        if values.numel() == 0:
            return
        first = self._way is None  # counted whole: the first batch fixes the histogram's bins
        if self._way is None:
            self._way = _ValueCounts(values.device) if values.dtype == torch.float16 else _Moments()
        piece = max(1, CPU_PIECE_BYTES // (8 * values.shape[-1]))
        if first or values.device.type != "cpu" or values.shape[0] <= piece:
            self._way.update(values)
            return
        for part in values.split(piece):
            self._way.update(part)

    def state(self) -> dict | None:
        """Everything `restore` needs to continue exactly where this left off (a checkpoint),
        copied to the host."""
        return None if self._way is None else self._way.state()

    def restore(self, state: dict | None, device: torch.device) -> None:
        if state is None:
            self._way = None
        elif state["way"] == "counts":
            self._way = _ValueCounts.restored(state, device)
        else:
            self._way = _Moments.restored(state, device)

    def summary(self) -> dict[str, float | int | dict | None]:
        if self._way is None:
            return {
                "tokens": 0,
                "mean": None,
                "mean_abs": None,
                "std": None,
                "min": None,
                "max": None,
                "sparsity_percent": None,
                "l2_norm_mean": None,
                "histogram": None,
            }
        return self._way.summary()


class _ValueCounts:
    """float16 values: a count per bit pattern (exact), and the sum of the token vectors' norms."""

    def __init__(self, device: torch.device) -> None:
        self.counts = torch.zeros(PATTERNS, dtype=torch.int64, device=device)
        self.l2 = _zero(device)
        self.tokens = 0
        self.histogram: _CountedHistogram | None = None

    def update(self, values: torch.Tensor) -> None:
        patterns = values.reshape(-1).view(torch.int16).to(torch.int32) + (PATTERNS // 2)
        if patterns.device.type == "cuda":  # bincount would read its size back: scatter instead
            one = torch.ones((), dtype=torch.int64, device=patterns.device).expand(patterns.numel())
            self.counts.index_put_((patterns.long(),), one, accumulate=True)
        else:
            self.counts += torch.bincount(patterns, minlength=PATTERNS)
        self.l2 += torch.linalg.vector_norm(values.to(torch.float64), dim=-1).sum()
        self.tokens += values.shape[0]
        if self.histogram is None:  # the bins: the first batch's finite range (one read-back)
            _counts, numbers = self._seen()
            finite = numbers[np.isfinite(numbers)]
            self.histogram = _CountedHistogram(
                *_bins_around(
                    float(finite.min()) if finite.size else math.inf,
                    float(finite.max()) if finite.size else math.inf,
                )
            )

    def state(self) -> dict:
        assert self.histogram is not None  # saved after a first batch
        return {
            "way": "counts",
            "counts": self.counts.detach().cpu().clone(),
            "l2": self.l2.detach().cpu().clone(),
            "tokens": self.tokens,
            "bins": (self.histogram.low, self.histogram.high),
        }

    @classmethod
    def restored(cls, state: dict, device: torch.device) -> _ValueCounts:
        way = cls(device)
        way.counts, way.l2 = state["counts"].to(device), state["l2"].to(device)
        way.tokens = state["tokens"]
        way.histogram = _CountedHistogram(*state["bins"])
        return way

    def _seen(self) -> tuple[np.ndarray, np.ndarray]:
        counts = self.counts.cpu().numpy()
        used = np.nonzero(counts)[0]
        numbers = (used - PATTERNS // 2).astype(np.int16).view(np.float16).astype(np.float64)
        return counts[used], numbers

    def summary(self) -> dict:
        counts, numbers = self._seen()
        n = int(counts.sum())
        assert self.histogram is not None  # made by the first `update`, which RunningStats calls at once
        with np.errstate(invalid="ignore", over="ignore"):
            mean = float((counts * numbers).sum() / n)
            m2 = float((counts * (numbers - mean) ** 2).sum())
            return {
                "tokens": self.tokens,
                "mean": mean,
                "mean_abs": float((counts * np.abs(numbers)).sum() / n),
                "std": math.sqrt(m2 / n) if m2 >= 0 else None,
                "min": float(numbers.min()) if not np.isnan(numbers).any() else math.nan,
                "max": float(numbers.max()) if not np.isnan(numbers).any() else math.nan,
                "sparsity_percent": 100.0 * float(counts[np.abs(numbers) < NEAR_ZERO].sum()) / n,
                "l2_norm_mean": self.l2.item() / self.tokens,
                "histogram": self.histogram.summary(counts, numbers),
            }


class _CountedHistogram:
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
            "edges": _edges(self.low, self.high, self.bins),
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
        self.below, self.nonfinite = _zero(device), _zero(device)
        self.values = 0

    @classmethod
    def spanning(cls, x: torch.Tensor) -> Histogram:
        finite = x[torch.isfinite(x)]  # once, on the first batch
        low, high = (finite.min().item(), finite.max().item()) if finite.numel() else (math.inf, math.inf)
        return cls.around(low, high, x.device)

    @classmethod
    def around(cls, low: float, high: float, device: torch.device) -> Histogram:
        """Bins over [low, high] (the first batch's finite range), widened by the margin."""
        return cls(*_float32_outward(*_bins_around(low, high)), device)

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
        histogram.counts = state["counts"].to(device)
        histogram.below, histogram.nonfinite = state["below"].to(device), state["nonfinite"].to(device)
        histogram.values = state["values"]
        return histogram

    def update_finite(self, values: torch.Tensor) -> None:
        """`update` for CPU values known finite: each value's bin from its offset, all of them in
        one bincount, with the values below and above the bins (clamped into the end bins there)
        counted exactly by comparison and taken back out; histc and the masks of `update` make
        several passes more. Exact because the bounds are float32 numbers (`spanning`)."""
        bins = self.counts.numel()
        array = values.numpy()
        below = int(np.count_nonzero(array < self.low))
        above = int(np.count_nonzero(array > self.high))
        slot = (values - self.low).mul_(bins / (self.high - self.low)).clamp_(0, bins - 1)
        # uint8 slots when they fit: bincount reads them faster than int32.
        slots = slot.to(torch.uint8 if bins <= 256 else torch.int32).view(-1)
        counted = torch.bincount(slots, minlength=bins)
        counted[0] -= below
        counted[-1] -= above
        self.counts += counted
        self.below += below
        self.values += values.numel()

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
            "edges": _edges(self.low, self.high, len(counts)),
            "counts": counts,
            "below": below,
            "above": self.values - sum(counts) - below - nonfinite,
            "nonfinite": nonfinite,
        }
