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
