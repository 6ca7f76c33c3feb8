"""The per-(layer, hook) histogram collected during extraction, against numpy over the saved file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models_app.ml import extraction, loading
from models_app.ml.extraction import ExtractionSettings
from models_app.ml.stats import RunningStats

from .test_extraction import CONTEXT, TEXTS


def test_it_counts_every_real_value_of_the_file_in_fixed_bins(model_sources, tmp_path):
    loaded = loading.load(model_sources["gpt2"], "fp32", device="cpu")
    settings = ExtractionSettings(
        layers=[1], hooks=["mlp"], batch_size=2, context_length=CONTEXT, dtype="float32"
    )
    meta = extraction.extract(loaded.model, loaded.tokenizer, TEXTS, settings, tmp_path)
    stats = meta["statistics"]["layer_1_mlp"]
    histogram = stats["histogram"]
    values = np.load(tmp_path / "layer_1_mlp.npy")[np.load(tmp_path / "attention_mask.npy").astype(bool)]
    edges = np.array(histogram["edges"])
    inside = values[(values >= edges[0]) & (values <= edges[-1])]
    expected, _ = np.histogram(inside, bins=edges)
    assert len(histogram["counts"]) == len(edges) - 1 == 40
    # Bin boundaries computed in float64 from the same edges: a value on an edge may land in the
    # neighbouring bin, nowhere else.
    assert np.abs(np.array(histogram["counts"]) - expected).sum() <= 2
    assert sum(histogram["counts"]) + histogram["below"] + histogram["above"] == values.size
    assert histogram["below"] == int((values < edges[0]).sum())
    assert histogram["above"] == int((values > edges[-1]).sum())


def update(stats: RunningStats, rows: list[list[float]]) -> None:
    """One batch of real tokens (rows of hidden values)."""
    stats.update(torch.tensor(rows, dtype=torch.float64))


def test_later_batches_outside_the_first_range_are_counted_below_or_above():
    stats = RunningStats()
    update(stats, [[0.0, 1.0], [0.5, 0.25]])
    update(stats, [[-10.0, 10.0], [0.5, 0.5]])
    summary = stats.summary()["histogram"]
    assert summary["below"] == 1 and summary["above"] == 1
    assert sum(summary["counts"]) == 6
    assert summary["edges"][0] == -0.25 and summary["edges"][-1] == 1.25


def test_a_constant_first_batch_still_gets_a_range():
    stats = RunningStats()
    update(stats, [[3.0, 3.0]])
    update(stats, [[3.0, 3.0]])
    histogram = stats.histogram
    assert histogram.low < 3.0 < histogram.high and int(histogram.counts.sum()) == 4


def test_inf_and_nan_are_counted_apart_and_leave_the_bins_finite():
    stats = RunningStats()
    update(stats, [[0.0, float("inf")], [1.0, float("nan")]])
    update(stats, [[-float("inf"), 0.5]])
    summary = stats.summary()["histogram"]
    assert all(np.isfinite(summary["edges"])) and summary["edges"][0] == -0.25
    assert summary["nonfinite"] == 3 and sum(summary["counts"]) == 3
    assert summary["below"] == summary["above"] == 0


def test_float16_overflow_leaves_strict_json_metadata(model_sources, tmp_path):
    import json

    loaded = loading.load(model_sources["llama"], "fp32", device="cpu")
    with torch.no_grad():
        loaded.model.model.layers[0].mlp.down_proj.weight.mul_(1e9)  # beyond float16's 65504
    settings = ExtractionSettings(layers=[0], hooks=["mlp"], batch_size=4, context_length=CONTEXT)
    meta = extraction.extract(loaded.model, loaded.tokenizer, TEXTS, settings, tmp_path)
    strict = json.loads(
        (tmp_path / "metadata.json").read_text(),
        parse_constant=lambda name: pytest.fail(f"{name} in metadata.json"),
    )
    stats = strict["statistics"]["layer_0_mlp"]
    assert stats["histogram"]["nonfinite"] > 0 and all(np.isfinite(stats["histogram"]["edges"]))
    assert stats["max"] is None or np.isfinite(stats["max"])
    assert meta["statistics"]["layer_0_mlp"] == stats


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_a_batch_counted_in_pieces_gives_what_whole_batches_give(dtype, monkeypatch):
    """On the CPU a large batch is counted in pieces (stats.CPU_PIECE_BYTES): the statistics and
    the histogram must be those of the values counted whole."""
    from models_app.ml import stats as stats_module

    generator = torch.Generator().manual_seed(3)
    hidden = 2048  # 256 tokens a piece
    batches = [
        torch.randn(tokens, hidden, generator=generator).mul_(3).to(dtype) for tokens in (300, 1000, 700)
    ]
    pieced, whole = RunningStats(), RunningStats()
    for batch in batches:
        pieced.update(batch)
    monkeypatch.setattr(stats_module, "CPU_PIECE_BYTES", 1 << 40)  # whole batches
    for batch in batches:
        whole.update(batch)
    got, expected = pieced.summary(), whole.summary()
    assert got.pop("histogram") == expected.pop("histogram")
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-12), name
    values = torch.cat(batches).double().numpy()
    assert got["mean"] == pytest.approx(values.mean(), rel=1e-9)
    assert got["std"] == pytest.approx(values.std(), rel=1e-9)
