"""The compiled loops of ml/kernels.py against numpy doing the same arithmetic the slow way:
each must give the very numbers the statistics and the top-K are defined by."""

from __future__ import annotations

import numpy as np
import pytest

from models_app.ml import kernels

BINS = 40


def reference_bins(values: np.ndarray, low: np.float32, high: np.float32) -> tuple[np.ndarray, int, int]:
    """Bin counts of the values inside [low, high] by the definition: (x - low) * scale in
    float32, truncated, the top edge in the last bin; and the counts below and above."""
    scale = np.float32(BINS / (float(high) - float(low)))
    inside = values[(values >= low) & (values <= high)]
    slots = np.minimum(((inside - low) * scale).astype(np.int64), BINS - 1)
    return np.bincount(slots, minlength=BINS), int((values < low).sum()), int((values > high).sum())


@pytest.mark.parametrize("tokens", [1, 3, 57])
def test_finite_moments_give_the_sums_and_bins_numpy_gives(tokens):
    rng = np.random.default_rng(tokens)
    values = (rng.standard_normal((tokens, 131)) * 3).astype(np.float32)  # 131: rows not a multiple of 4
    low, high = np.float32(-4.0), np.float32(5.5)
    values[0, :6] = [low, high, np.nextafter(low, -np.inf), np.nextafter(high, np.inf), 0.0, 0.00999]
    edges = low + np.arange(BINS + 1, dtype=np.float32) * np.float32((high - low) / BINS)
    values.reshape(-1)[7 : 7 + BINS] = edges[:BINS]  # values on the bins' edges
    scale = np.float32(BINS / (float(high) - float(low)))

    total, squares, magnitude, near, norms, counted, below, above, least, most = kernels.finite_moments(
        values, low, high, scale, 0.01, BINS
    )

    exact = values.astype(np.float64)
    assert total == pytest.approx(exact.sum(), rel=1e-12, abs=1e-9)
    assert squares == pytest.approx((exact**2).sum(), rel=1e-12)
    assert magnitude == pytest.approx(np.abs(exact).sum(), rel=1e-12)
    assert norms == pytest.approx(np.linalg.norm(exact, axis=1).sum(), rel=1e-12)
    assert near == int((np.abs(exact) < 0.01).sum())
    expected, expected_below, expected_above = reference_bins(values, low, high)
    np.testing.assert_array_equal(counted, expected)
    assert (below, above) == (expected_below, expected_above)
    assert counted.sum() + below + above == values.size
    assert (least, most) == (values.min(), values.max())


@pytest.mark.parametrize("sign", [1, -1])
def test_finite_moments_give_the_range_of_negative_numbers_and_zeros(sign):
    values = np.array([[sign * 3.5, -0.0, 0.0, sign * 1e-40, sign * 2.0]], np.float32)  # 1e-40: subnormal

    *_, least, most = kernels.finite_moments(values, np.float32(-4), np.float32(4), np.float32(5), 0.01, BINS)

    assert (least, most) == (values.min(), values.max())


@pytest.mark.parametrize("odd", [np.nan, np.inf, -np.inf])
def test_finite_moments_of_a_batch_holding_inf_or_nan_have_a_sum_that_says_so(odd):
    values = np.ones((3, 9), np.float32)
    values[1, 4] = odd

    total, squares, *_ = kernels.finite_moments(
        values, np.float32(-2), np.float32(2), np.float32(10), 0.01, BINS
    )

    assert not (np.isfinite(total) and np.isfinite(squares))


def test_count_patterns_counts_every_float16_pattern_and_squares_it():
    rng = np.random.default_rng(1)
    values = (rng.standard_normal((9, 70)) * 50).astype(np.float16)
    values[0, :4] = [np.inf, -np.inf, -0.0, 65504]
    values[1, :3] = [np.float16(6e-8), -np.float16(6e-8), 0.0]  # subnormals
    counts = np.zeros(1 << 16, np.int64)

    norms = kernels.count_patterns(values.view(np.uint16), kernels.pattern_squares(), counts)

    # stats._ValueCounts' order: the pattern as an int16, plus 32768.
    patterns = values.view(np.int16).astype(np.int64).reshape(-1) + (1 << 15)
    np.testing.assert_array_equal(counts, np.bincount(patterns, minlength=1 << 16))
    finite_rows = np.linalg.norm(values[1:].astype(np.float64), axis=1).sum()
    assert norms == np.inf  # the row holding inf
    counts[:] = 0
    assert kernels.count_patterns(values[1:].view(np.uint16), kernels.pattern_squares(), counts) == (
        pytest.approx(finite_rows, rel=1e-12)
    )


def test_merge_top_k_keeps_the_k_largest_and_the_first_seen_of_equal_values():
    rng = np.random.default_rng(2)
    k, hidden = 4, 23
    batches = [rng.integers(-6, 7, size=(11, hidden)).astype(np.float32) for _ in range(9)]  # many ties
    batches[3][2, 5] = np.nan
    batches[4][0, 6] = np.inf
    # Start full: the first batch's K largest, as the dense merge leaves them.
    first = batches[0]
    order = np.argsort(-first, axis=0, kind="stable")[:k]
    kept_values = np.take_along_axis(first, order, 0).copy()
    kept_samples = np.zeros((k, hidden), np.int64)
    kept_tokens = order.astype(np.int64)
    for sample, batch in enumerate(batches[1:], start=1):
        tokens = np.arange(batch.shape[0], dtype=np.int64)
        kernels.merge_top_k(
            batch, np.full(batch.shape[0], sample, np.int64), tokens, kept_values, kept_samples, kept_tokens
        )

    everything = np.concatenate(batches)
    everything[np.isnan(everything)] = -np.inf
    # By value from the largest down; of equal values, the earliest seen (stable sort).
    best = np.argsort(-everything, axis=0, kind="stable")[:k]
    np.testing.assert_array_equal(kept_values, np.take_along_axis(everything, best, 0))
    np.testing.assert_array_equal(kept_samples * 11 + kept_tokens, best)


def test_merge_top_k_float16_keeps_what_merge_top_k_keeps_from_the_float32_values():
    rng = np.random.default_rng(3)
    k, hidden = 5, 37
    batches = [(rng.standard_normal((13, hidden)) * 4).astype(np.float16) for _ in range(12)]
    batches[2][3, 1] = np.nan
    batches[5][0, 2] = np.inf
    batches[6][1, :4] = [-0.0, 0.0, np.float16(6e-8), -np.inf]  # signed zeros, a subnormal
    batches[7] = np.round(batches[7])  # many ties with what is kept
    kept = [
        (
            np.full((k, hidden), -np.inf, np.float32),
            np.zeros((k, hidden), np.int64),
            np.zeros((k, hidden), np.int64),
        )
        for _ in range(2)
    ]
    for sample, batch in enumerate(batches):
        where = (np.full(batch.shape[0], sample, np.int64), np.arange(batch.shape[0], dtype=np.int64))
        kernels.merge_top_k(batch.astype(np.float32), *where, *kept[0])
        floor = kernels.ordered_float16(kept[1][0][-1])
        kernels.merge_top_k_float16(batch.view(np.int16), kernels.pattern_values(), floor, *where, *kept[1])

    for expected, got in zip(kept[0], kept[1], strict=True):
        np.testing.assert_array_equal(got, expected)
    assert np.isfinite(kept[1][0]).sum() > k * hidden // 2  # the test merged real values


def test_float16_floors_are_at_or_below_the_k_th_values():
    kth = np.array([-np.inf, -3.0, -0.0, 0.0, 1e-9, 0.1, 1.0001, 65504.0, 7e4, 0.99999], np.float32)

    floor = kernels.ordered_float16(kth)

    halves = kernels.pattern_values()[
        (floor ^ ((floor >> 15) & np.int16(0x7FFF))).view(np.uint16)
    ]  # the keys back to float16 bits, then to values
    assert (halves <= kth).all()
    np.testing.assert_array_equal(halves[[0, 1, 2, 7]], kth[[0, 1, 2, 7]])  # float16 numbers: exact
    assert halves[6] == np.float32(np.float16(1.0))  # 1.0001: the float16 just below
    assert halves[9] == np.nextafter(np.float16(1.0), np.float16(0))  # 0.99999 rounds up to 1.0: one below
