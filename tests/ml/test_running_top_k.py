"""RunningTopK against a brute-force top-K over every batch at once: many batches (so most
neurons stop changing and only the others are merged), ties, NaN and inf, both file dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models_app.ml.topk import RunningTopK

K, HIDDEN, TOKENS = 5, 64, 40
# Both ways of merging: in place (the CPU's) and ranking each batch whole (a GPU's).
WAYS = pytest.mark.parametrize("in_place", [True, False], ids=["in place", "whole batches"])


@WAYS
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_it_keeps_the_k_largest_of_every_neuron_over_many_batches(dtype, in_place):
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randn(TOKENS, HIDDEN, generator=generator).to(dtype) for _ in range(60)]
    batches[0][:, 0] = float("nan")  # a neuron that overflowed in its first batch
    batches[7][3, 1] = float("nan")  # a NaN among numbers, after the first batch
    batches[9][5, 2] = float("inf")
    batches[20][:, 3] = 0.0  # ties
    top = RunningTopK(K, HIDDEN, "cpu", in_place=in_place)
    for i, batch in enumerate(batches):
        positions = torch.arange(TOKENS)
        top.update(batch, torch.full((TOKENS,), i), positions)
    everything = torch.cat(batches).float().numpy()
    everything[np.isnan(everything)] = -np.inf  # NaN never takes a slot
    expected = -np.sort(-everything, axis=0)[:K].T
    got = top.arrays()
    np.testing.assert_array_equal(got["values"], expected)
    # Each kept position holds its value (ties may pick either of equal values).
    for neuron in range(HIDDEN):
        for slot in range(K):
            if got["sample_index"][neuron, slot] >= 0:
                value = batches[got["sample_index"][neuron, slot]][got["token_index"][neuron, slot], neuron]
                assert value.float().item() == got["values"][neuron, slot]
            else:
                assert got["values"][neuron, slot] == -np.inf


@pytest.mark.parametrize(("rows", "k"), [(1, 1), (7, 3), (40, 5), (481, 10), (1000, 1), (999, 16)])
def test_the_largest_per_column_equal_topk_with_rows_holding_them(rows, k):
    from models_app.ml.topk import _largest

    generator = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, 33, generator=generator)
    x[: rows // 2, 0] = 1.0  # ties in a column
    values, where = _largest(x, k)
    expected = x.topk(k, dim=0).values
    assert torch.equal(values, expected)
    assert torch.equal(x.gather(0, where), values)  # each row holds its value


@WAYS
def test_a_batch_that_beats_every_kept_value_is_merged_whole(in_place):
    """After many batches only a few values a batch beat their neuron's K-th; one batch far above
    all of them (every value a candidate) takes the whole-batch merge and must agree too."""
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randn(TOKENS, HIDDEN, generator=generator) for _ in range(40)]
    batches[30] += 10.0
    top = RunningTopK(K, HIDDEN, "cpu", in_place=in_place)
    for i, batch in enumerate(batches):
        top.update(batch, torch.full((TOKENS,), i), torch.arange(TOKENS))
    expected = torch.cat(batches).topk(K, dim=0)
    got = top.arrays()
    np.testing.assert_array_equal(got["values"], expected.values.T.numpy())
    positions = got["sample_index"] * TOKENS + got["token_index"]
    np.testing.assert_array_equal(positions, expected.indices.T.numpy())


def test_of_equal_values_the_one_seen_first_stays():
    """Merged in place (the CPU's way); ranking a batch whole breaks ties as topk does."""
    top = RunningTopK(2, 1, "cpu")
    top.update(torch.tensor([[3.0], [1.0]]), torch.tensor([0, 0]), torch.tensor([0, 1]))
    top.update(torch.tensor([[1.0], [1.0]]), torch.tensor([1, 1]), torch.tensor([0, 1]))
    assert top.arrays()["sample_index"].tolist() == [[0, 0]]
    top.update(torch.tensor([[0.5], [2.0], [2.0]]), torch.tensor([2, 2, 2]), torch.tensor([0, 1, 2]))
    got = top.arrays()
    assert got["values"].tolist() == [[3.0, 2.0]]
    assert (got["sample_index"].tolist(), got["token_index"].tolist()) == ([[0, 2]], [[0, 1]])


def test_a_batch_merged_in_pieces_keeps_what_a_whole_batch_keeps(monkeypatch):
    """On a GPU each batch is merged a piece at a time (bounded memory): the K kept per neuron,
    and where they came from, must be those of whole batches."""
    from models_app.ml import topk

    generator = torch.Generator().manual_seed(5)
    batches = [torch.randn(TOKENS, HIDDEN, generator=generator) for _ in range(6)]
    whole = RunningTopK(K, HIDDEN, "cpu")
    pieced = RunningTopK(K, HIDDEN, "cpu", in_place=False)
    for i, batch in enumerate(batches):
        whole.update(batch, torch.full((TOKENS,), i), torch.arange(TOKENS))
    monkeypatch.setattr(topk, "_piece_rows", lambda values: 3)  # as a GPU would, 3 tokens a piece
    for i, batch in enumerate(batches):
        pieced.update(batch, torch.full((TOKENS,), i), torch.arange(TOKENS))
    for name, array in whole.arrays().items():
        np.testing.assert_array_equal(pieced.arrays()[name], array, err_msg=name)
