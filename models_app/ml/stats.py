"""Streaming statistics of one activation tensor over real (unpadded) tokens, kept on the
activations' device: mean, mean |x|, std, min, max, sparsity (|x| < 0.01), mean L2 norm of the
token vectors, and a histogram.

Two exact ways, by the dtype the file stores:
- float16 (the default): every value is one of 65,536 bit patterns, so each batch only adds to a
  count per pattern (one pass); every statistic and the histogram are computed from those counts
  at the end, in float64, and equal numpy's over all real tokens at once.
- float32: each batch is reduced in float64 and merged with Chan's parallel algorithm, with the
  histogram counted batch by batch.
Memory stays one piece of a batch either way (`pieces`). Nothing is read back to the host until
`summary()` (the histogram's range, once, on the first batch): on a GPU the forward pass of the
next batch is not held up waiting for statistics.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import kernels
from .histogram import CountedHistogram, Histogram, bins_around, zero

NEAR_ZERO = 0.01  # |x| below this counts towards sparsity
PATTERNS = 1 << 16  # float16 bit patterns
# A batch is counted in pieces. On the CPU, of about this many float64 bytes: the compiled loops
# need no copy, but a batch holding inf or NaN takes torch's passes over a float64 copy of each
# piece, which then stay in the cache.
CPU_PIECE_BYTES = 4 << 20
# On a GPU, of at most this many values: counting makes copies of up to 8 bytes a value (int64
# bit patterns, float64 values), and a batch the forward pass fits in memory must not run the
# card out of it in its statistics, where the batch is no longer halved.
DEVICE_PIECE_VALUES = 16 << 20


def pieces(values: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """`values` ([tokens, hidden]) split by tokens into the pieces it is counted in."""
    limit = CPU_PIECE_BYTES // 8 if values.device.type == "cpu" else DEVICE_PIECE_VALUES
    rows = max(1, limit // max(1, values.shape[-1]))
    return values.split(rows) if values.shape[0] > rows else (values,)


def finite_range(values: torch.Tensor) -> tuple[float, float]:
    """The smallest and largest finite value of a batch ((inf, inf) if none), piece by piece."""
    low, high = math.inf, -math.inf
    for part in pieces(values):
        least, most = (bound.item() for bound in torch.aminmax(part.float()))
        if not (math.isfinite(least) and math.isfinite(most)):  # inf or NaN: mask them out
            finite = part.float()[torch.isfinite(part)]
            if finite.numel() == 0:
                continue
            least, most = finite.min().item(), finite.max().item()
        low, high = min(low, least), max(high, most)
    return (low, high) if low <= high else (math.inf, math.inf)


class _Moments:
    """float32 values: moments merged batch by batch (Chan), histogram counted per batch."""

    def __init__(self) -> None:
        self.count = 0  # values (tokens x hidden)
        self.tokens = 0
        self.histogram: Histogram | None = None
        self._sums: dict[str, torch.Tensor] | None = None
        self._views: dict[str, np.ndarray] | None = None  # _host_sums

    @classmethod
    def for_first_batch(cls, values: torch.Tensor) -> _Moments:
        """Zero sums, and the histogram whose bins the first batch's finite range fixes."""
        way = cls()
        way._begin(Histogram.around(*finite_range(values), values.device))
        return way

    def update(self, values: torch.Tensor) -> None:
        """`values`: [tokens, hidden], real tokens only, in the dtype the file stores."""
        if values.numel() == 0:
            return
        if values.device.type == "cpu" and self._update_finite_on_cpu(values):
            return
        x = values.to(torch.float64)
        n = x.numel()
        sums = self._sums
        assert sums is not None  # begun by for_first_batch
        # Every sum is updated in place: on the CPU, _update_finite_on_cpu reads and writes them
        # through numpy views of these same tensors.
        batch_mean = x.sum() / n
        batch_m2 = (x - batch_mean).square_().sum()
        delta = batch_mean - sums["mean"]
        total = self.count + n
        sums["mean"].add_(delta * (n / total))
        sums["m2"].add_(batch_m2 + delta * delta * (self.count * n / total))
        self.count, self.tokens = total, self.tokens + x.shape[0]
        magnitude = x.abs()
        sums["abs"] += magnitude.sum()
        sums["near_zero"] += (magnitude < NEAR_ZERO).sum()
        least, most = torch.aminmax(x)
        sums["min"].copy_(torch.minimum(sums["min"], least))
        sums["max"].copy_(torch.maximum(sums["max"], most))
        sums["l2"] += torch.linalg.vector_norm(x, dim=-1).sum()
        # Bin counts need no float64: float32 holds the file's float16 values exactly, and is
        # the faster pass.
        assert self.histogram is not None  # made with the sums, by for_first_batch
        self.histogram.update(values.float())

    def _begin(self, histogram: Histogram) -> None:
        """Zero sums, and the histogram whose bins the first batch fixed."""
        device = histogram.counts.device
        self._sums = {name: zero(device) for name in ("mean", "m2", "abs", "near_zero", "l2")}
        self._sums["min"] = torch.full((), math.inf, dtype=torch.float64, device=device)
        self._sums["max"] = torch.full((), -math.inf, dtype=torch.float64, device=device)
        self.histogram = histogram

    def _update_finite_on_cpu(self, values: torch.Tensor) -> bool:
        """`update` on the CPU for a float32 batch with no inf or NaN (False, and nothing
        counted, for one with them): every sum, the range and the bin counts in one compiled
        pass over the batch (ml/kernels.py), merged in Python floats written through numpy
        views of the sums' tensors. Nothing here is a torch operation: on two cores each one
        costs more than a token's row, and hands half its work to torch's other thread, which
        may be waiting for the core the writer thread has. The batch's own m2 is
        sum(x^2) - sum(x)^2 / n: over all the values of a (layer, hook) the mean is small beside
        the spread, so nothing cancels that float64 would notice."""
        histogram, sums = self.histogram, self._host_sums()
        assert histogram is not None and sums is not None  # begun by for_first_batch
        if values.dtype != torch.float32 or not histogram.fits_slots():
            return False
        array = np.ascontiguousarray(values.numpy())
        n, bins = array.size, histogram.counts.numel()
        total, squares, magnitude, near_zero, norms, counted, below, _above, low, high = (
            kernels.finite_moments(
                array,
                np.float32(histogram.low),
                np.float32(histogram.high),
                np.float32(bins / (histogram.high - histogram.low)),
                NEAR_ZERO,
                bins,
            )
        )
        if not (math.isfinite(total) and math.isfinite(squares)):  # inf or NaN: torch's way
            return False
        low, high = float(low), float(high)
        mean, m2 = float(sums["mean"]), float(sums["m2"])
        batch_mean = total / n
        batch_m2 = max(squares - total * batch_mean, 0.0)
        delta = batch_mean - mean
        count = self.count + n
        sums["mean"][()] = mean + delta * (n / count)
        sums["m2"][()] = m2 + batch_m2 + delta * delta * (self.count * n / count)
        sums["abs"] += magnitude
        sums["near_zero"] += near_zero
        sums["min"][()] = min(float(sums["min"]), low)
        sums["max"][()] = max(float(sums["max"]), high)
        sums["l2"] += norms
        self.count, self.tokens = count, self.tokens + values.shape[0]
        histogram.add(counted, below, n)
        return True

    def _host_sums(self) -> dict[str, np.ndarray] | None:
        """The sums' CPU tensors as 0-d numpy arrays sharing their memory (None before the first
        batch); valid as long as every update writes the tensors in place."""
        if self._sums is None:
            return None
        if self._views is None:
            self._views = {name: value.numpy() for name, value in self._sums.items()}
        return self._views

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
        # Copies: the sums are updated in place, and the state may be restored again.
        way._sums = {name: value.to(device, copy=True) for name, value in state["sums"].items()}
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
        first = self._way is None  # the whole first batch fixes the histogram's bins
        if self._way is None:
            float16 = values.dtype == torch.float16
            self._way = _ValueCounts(values.device) if float16 else _Moments.for_first_batch(values)
        for part in pieces(values):
            self._way.update(part)
        if first and isinstance(self._way, _ValueCounts):
            self._way.fix_bins()

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
        self.l2 = zero(device)
        self.tokens = 0
        self.histogram: CountedHistogram | None = None

    def update(self, values: torch.Tensor) -> None:
        if values.device.type == "cpu":
            bits = np.ascontiguousarray(values.numpy()).view(np.uint16)
            self.l2 += kernels.count_patterns(bits, kernels.pattern_squares(), self.counts.numpy())
            self.tokens += values.shape[0]
            return
        patterns = values.reshape(-1).view(torch.int16).to(torch.int32) + (PATTERNS // 2)
        if patterns.device.type == "cuda":
            # bincount would read its size back. An atomic scatter_add_ (exact: integer counts)
            # took 0.5 ms for 8,192 x 2,048 values on an H200, against 3.9 ms for index_put_'s
            # sort (bench/gpu_counting.py).
            one = torch.ones((), dtype=torch.int64, device=patterns.device).expand(patterns.numel())
            self.counts.scatter_add_(0, patterns.long(), one)
        else:
            self.counts += torch.bincount(patterns, minlength=PATTERNS)
        # float64 inside the kernel: no float64 copy of the values is made.
        self.l2 += torch.linalg.vector_norm(values, dim=-1, dtype=torch.float64).sum()
        self.tokens += values.shape[0]

    def fix_bins(self) -> None:
        """The histogram's bins: the finite range of what the first batch counted (one read-back)."""
        _counts, numbers = self._seen()
        finite = numbers[np.isfinite(numbers)]
        self.histogram = CountedHistogram(
            *bins_around(
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
        way.histogram = CountedHistogram(*state["bins"])
        return way

    def _seen(self) -> tuple[np.ndarray, np.ndarray]:
        counts = self.counts.cpu().numpy()
        used = np.nonzero(counts)[0]
        numbers = (used - PATTERNS // 2).astype(np.int16).view(np.float16).astype(np.float64)
        return counts[used], numbers

    def summary(self) -> dict:
        counts, numbers = self._seen()
        n = int(counts.sum())
        assert self.histogram is not None  # fixed after the first batch by RunningStats
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
