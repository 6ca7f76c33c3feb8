"""Compiled loops (numba) for what the CPU counts of every batch an extraction captures: the
statistics of ml/stats.py and the top-K's merge in place (ml/topk.py).

Each loop reads the batch once, a token's row at a time while it is in the cache, where torch
would make a dozen passes over it, each with its own temporary: the float32 statistics take a
third to a quarter of torch's time, 1.6 to 2.8 ns a value against 5.5 to 8.8 on two cores
(bench/batch_costs.py, bench/README.md). What they compute is defined by ml/stats.py and
ml/histogram.py; these are only faster ways to the same numbers.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit

# Sums may be reassociated (summed in vector lanes): float64 sums of float32 values change in
# their last bits only, and the same batch always gives the same bits. No assumption about inf or
# NaN: the callers check a batch is finite first.
_SUMS = {"reassoc", "contract", "nsz", "arcp"}


def _compiled(fastmath: set[str] | bool = False):
    """njit, cached on disk where a cache folder can be written (compiling takes seconds; a
    read-only install compiles once per process instead)."""

    def compile_it(function):
        try:
            return njit(nogil=True, cache=True, boundscheck=False, fastmath=fastmath)(function)
        except RuntimeError:  # numba found no folder it may write its cache to
            return njit(nogil=True, cache=False, boundscheck=False, fastmath=fastmath)(function)

    return compile_it


@_compiled(fastmath=_SUMS)
def _row_sums(row, near_zero, low, high):
    """One token's sum, sum of squares and sum of |x| (float64), and how many of its values are
    near zero, below `low` and above `high`."""
    total = squares = magnitude = 0.0
    near = below = above = np.int64(0)
    for i in range(row.shape[0]):  # indexed: LLVM vectorizes this loop, not `for value in row`
        value = row[i]
        x = np.float64(value)
        total += x
        squares += x * x
        magnitude += abs(x)
        near += np.int64(abs(x) < near_zero)
        below += np.int64(value < low)
        above += np.int64(value > high)
    return total, squares, magnitude, near, below, above


@_compiled()
def _row_range(keys, least, most):
    """The least and largest of `least`, `most` and a token's values, as ordered keys (`keys`:
    the row's float32 bits as int32; see _ordered). A loop of its own, in integer lanes: min
    and max of floats, with their NaN rules, do not vectorize."""
    for i in range(keys.shape[0]):
        key = _ordered(keys[i])
        least = min(least, key)
        most = max(most, key)
    return least, most


@_compiled()
def _ordered(bits):
    """A float32's bits (int32) as an int32 in the order of the values: the bits of a positive
    number already are; a negative one's other 31 bits are flipped. Its own inverse. Only for
    numbers (not NaN); -0.0 comes just below 0.0."""
    return bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))


@_compiled()
def _row_bins(row, low, scale, top, slots, counts):
    """Adds one token's values to `counts` (4 interleaved copies of the bins, so that a run of
    values in one bin does not wait on its own count): bin (x - low) * scale in the values' own
    dtype, truncated, clamped into [0, top]: exact, as low is a number of that dtype
    (histogram.Histogram.around). NaN goes to bin 0 rather than to an undefined slot: the
    caller drops a batch holding one, but only after this loop has seen it."""
    bins = counts.shape[0] // 4
    zero = low - low
    for i in range(row.shape[0]):
        place = (row[i] - low) * scale
        place = place if place > zero else zero  # NaN fails the test
        slots[i] = np.uint8(place if place < top else top)
    whole = row.shape[0] - row.shape[0] % 4
    for i in range(0, whole, 4):
        counts[slots[i]] += 1
        counts[bins + slots[i + 1]] += 1
        counts[2 * bins + slots[i + 2]] += 1
        counts[3 * bins + slots[i + 3]] += 1
    for i in range(whole, row.shape[0]):
        counts[slots[i]] += 1


@_compiled()
def finite_moments(values, low, high, scale, near_zero, bins):
    """For float32 `values` [tokens, hidden] (low, high and scale float32): (sum, sum of squares,
    sum of |x|, near-zero count, sum of the tokens' L2 norms, bin counts [bins] with the values
    below `low` and above `high` left out, below count, above count, least value, largest
    value). Exact for finite values only: a batch holding inf or NaN has a sum that is not
    finite, and then nothing else in the result means anything."""
    total = squares = magnitude = norms = 0.0
    near = below = above = 0
    least = most = _ordered(values.view(np.int32)[0, 0])
    counts = np.zeros(4 * bins, np.int64)
    slots = np.empty(values.shape[1], np.uint8)
    top = np.float32(bins - 1)
    for t in range(values.shape[0]):
        row = values[t]
        row_total, row_squares, row_magnitude, row_near, row_below, row_above = _row_sums(
            row, near_zero, low, high
        )
        least, most = _row_range(row.view(np.int32), least, most)
        _row_bins(row, low, scale, top, slots, counts)
        total += row_total
        squares += row_squares
        magnitude += row_magnitude
        norms += math.sqrt(row_squares)
        near += row_near
        below += row_below
        above += row_above
    binned = counts[:bins] + counts[bins : 2 * bins] + counts[2 * bins : 3 * bins] + counts[3 * bins :]
    binned[0] -= below  # clamped into the end bins above; counted apart
    binned[bins - 1] -= above
    ends = np.array([_ordered(least), _ordered(most)], np.int32).view(np.float32)
    return total, squares, magnitude, near, norms, binned, below, above, ends[0], ends[1]


@_compiled()
def count_patterns(bits, squares, counts):
    """float16 `bits` [tokens, hidden] (viewed as uint16): adds one to counts[pattern] per value,
    in stats._ValueCounts' order (the int16 value + 32768, i.e. the bits with the sign bit
    flipped), and returns the sum of the tokens' L2 norms, from `squares` (each pattern's value
    squared, in float64)."""
    norms = 0.0
    for t in range(bits.shape[0]):
        row_squares = 0.0
        row = bits[t]
        for i in range(row.shape[0]):
            pattern = row[i]
            counts[pattern ^ 0x8000] += 1
            row_squares += squares[pattern]
        norms += math.sqrt(row_squares)
    return norms


@functools.cache  # one table for every batch
def pattern_squares() -> np.ndarray:
    """Each float16 bit pattern's value, squared, in float64 (inf and NaN as they square)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float64) ** 2


@_compiled()
def _enter(value, sample, token, neuron, kept_values, kept_samples, kept_tokens):
    """Puts `value` (which beats its neuron's K-th kept value) in its place among the kept ones,
    below those it equals, and drops the K-th."""
    slot = kept_values.shape[0] - 1
    while slot > 0 and kept_values[slot - 1, neuron] < value:
        kept_values[slot, neuron] = kept_values[slot - 1, neuron]
        kept_samples[slot, neuron] = kept_samples[slot - 1, neuron]
        kept_tokens[slot, neuron] = kept_tokens[slot - 1, neuron]
        slot -= 1
    kept_values[slot, neuron] = value
    kept_samples[slot, neuron] = sample
    kept_tokens[slot, neuron] = token


@_compiled()
def merge_top_k(values, samples, tokens, kept_values, kept_samples, kept_tokens):
    """Merges a batch's float32 `values` [tokens, hidden] (`samples` / `tokens` [tokens]: each
    token's sample and position) into a full top-K ([K, hidden] each, every column sorted from
    the largest down), in place. A value enters only if it beats its neuron's K-th kept value,
    and goes below the kept values it equals: of equal values the one seen first stays. NaN
    beats nothing. After the first batches few values of a batch beat a K-th, so this is
    mostly one comparison per value."""
    last = kept_values.shape[0] - 1
    for t in range(values.shape[0]):
        row = values[t]
        for neuron in range(row.shape[0]):
            if row[neuron] > kept_values[last, neuron]:
                _enter(row[neuron], samples[t], tokens[t], neuron, kept_values, kept_samples, kept_tokens)


@_compiled()
def _ordered_half(bits):
    """A float16's bits (int16) as an integer in the order of the values, like _ordered."""
    return bits ^ ((bits >> 15) & 0x7FFF)


@_compiled()
def merge_top_k_float16(bits, values_of, floor, samples, tokens, kept_values, kept_samples, kept_tokens):
    """merge_top_k for float16 values, given as their bits `bits` [tokens, hidden] (int16),
    without a float32 copy of the batch: each row is first tested in integer lanes against
    `floor` [hidden], the ordered keys (ordered_float16) of the neurons' K-th kept values as
    the batch begins; only a row with a value above its floor is read value by value, and
    such a value (its float32 from `values_of`, pattern_values()) enters if it beats its
    neuron's K-th now. K-ths only rise as values enter, so the floors let through every value
    that can; NaN sorts above the floors but beats nothing."""
    last = kept_values.shape[0] - 1
    for t in range(bits.shape[0]):
        row = bits[t]
        above = False
        for neuron in range(row.shape[0]):
            above |= _ordered_half(row[neuron]) > floor[neuron]
        if not above:
            continue
        for neuron in range(row.shape[0]):
            if _ordered_half(row[neuron]) > floor[neuron]:
                value = values_of[np.int32(row[neuron]) & 0xFFFF]
                if value > kept_values[last, neuron]:
                    _enter(value, samples[t], tokens[t], neuron, kept_values, kept_samples, kept_tokens)


def ordered_float16(kth: np.ndarray) -> np.ndarray:
    """merge_top_k_float16's floors for float32 K-th values `kth` [hidden]: the ordered key of
    the largest float16 at or below each (an exact one when the K-th came from float16 values,
    as in a float16 run)."""
    with np.errstate(over="ignore"):  # beyond float16: inf, then the largest number below it
        half = kth.astype(np.float16)
    keys = half.view(np.int16)
    keys = keys ^ ((keys >> 15) & np.int16(0x7FFF))
    return (keys - (half.astype(np.float32) > kth)).astype(np.int16)


@functools.cache  # one table for every batch
def pattern_values() -> np.ndarray:
    """Each float16 bit pattern's value as a float32, indexed by the pattern as a uint16."""
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
