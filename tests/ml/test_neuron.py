"""ml/neuron.py against numpy over the saved arrays' real tokens (the engine's folder of a tiny
Llama, float32 files): density, histogram, bands and their examples, correlated neurons; small
chunks change nothing; padding never enters."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from models_app.ml import neuron as neuron_profile

KEY, NEURON = "layer_1_mlp", 5


@pytest.fixture
def real(engine_folder):
    """The hook's values at real tokens [tokens, hidden], and each token's (sample, position)."""
    mask = np.load(engine_folder / "attention_mask.npy").astype(bool)
    values = np.load(engine_folder / f"{KEY}.npy")[mask].astype(np.float64)
    samples, positions = np.nonzero(mask)
    return values, samples, positions


def test_each_figure_is_numpys(engine_folder, real):
    values, _samples, _positions = real
    x = values[:, NEURON]
    got = neuron_profile.profile(engine_folder, KEY, NEURON, threshold=0.01)
    assert got["tokens"] == len(x)
    assert (got["min"], got["max"]) == (x.min(), x.max())
    assert got["mean"] == pytest.approx(x.mean(), rel=1e-12)
    assert got["density"] == (x > 0.01).mean()
    counts, edges = np.histogram(x, bins=neuron_profile.NEURON_BINS, range=(x.min(), x.max()))
    assert got["histogram"]["counts"] == counts.tolist()
    np.testing.assert_allclose(got["histogram"]["edges"], edges, rtol=1e-12)
    band_counts, _ = np.histogram(x, bins=neuron_profile.BANDS, range=(x.min(), x.max()))
    assert [b["count"] for b in got["bands"]] == band_counts.tolist()
    r = np.corrcoef(values.T)[NEURON]
    r[NEURON] = -np.inf
    expected = np.argsort(-r, kind="stable")[: neuron_profile.CORRELATED]
    assert [c["neuron"] for c in got["correlated"]] == expected.tolist()
    np.testing.assert_allclose([c["correlation"] for c in got["correlated"]], r[expected], rtol=1e-9)


def test_band_examples_are_tokens_of_their_band(engine_folder, real):
    values, samples, positions = real
    got = neuron_profile.profile(engine_folder, KEY, NEURON, per_band=2)
    at = {(int(s), int(p)): v for s, p, v in zip(samples, positions, values[:, NEURON], strict=True)}
    for band in got["bands"]:
        assert len(band["examples"]) == min(2, band["count"])
        for example in band["examples"]:
            value = at[(example["sample"], example["token"])]
            assert example["value"] == value and band["low"] <= value <= band["high"]
        assert [e["value"] for e in band["examples"]] == sorted(
            (e["value"] for e in band["examples"]), reverse=True
        )
    assert neuron_profile.profile(engine_folder, KEY, NEURON, per_band=2) == got  # the same draw each time


def test_small_chunks_change_nothing(engine_folder):
    whole = neuron_profile.profile(engine_folder, KEY, NEURON)
    chunked = neuron_profile.profile(
        engine_folder, KEY, NEURON, chunk_bytes=8 * 128 * 7
    )  # 7 tokens, hidden 128
    assert chunked["histogram"] == whole["histogram"] and chunked["density"] == whole["density"]
    assert chunked["bands"] == whole["bands"]  # the reservoir's keys are one stream, however cut
    assert [c["neuron"] for c in chunked["correlated"]] == [c["neuron"] for c in whole["correlated"]]


def test_padding_never_enters(engine_folder, tmp_path, real):
    folder = tmp_path / "padded"
    shutil.copytree(engine_folder, folder)
    mask = np.load(folder / "attention_mask.npy").astype(bool)
    array = np.load(folder / f"{KEY}.npy")
    array[~mask] = 1e6
    np.save(folder / f"{KEY}.npy", array)
    got = neuron_profile.profile(folder, KEY, NEURON)
    assert got["max"] == real[0][:, NEURON].max() < 1e6


def test_a_neuron_out_of_range_is_refused(engine_folder):
    with pytest.raises(neuron_profile.NeuronUnavailable, match="neurons 0 to"):
        neuron_profile.profile(engine_folder, KEY, 10_000)


def test_an_overflowed_neighbour_is_left_out_and_the_neuron_still_shows(engine_folder, tmp_path, real):
    folder = tmp_path / "overflowed"
    shutil.copytree(engine_folder, folder)
    array = np.load(folder / f"{KEY}.npy")
    mask = np.load(folder / "attention_mask.npy").astype(bool)
    sample, position = np.argwhere(mask)[3]
    array[sample, position, 9] = np.inf  # neuron 9 overflowed once
    np.save(folder / f"{KEY}.npy", array)
    got = neuron_profile.profile(folder, KEY, NEURON)
    assert got["max"] == real[0][:, NEURON].max() and 9 not in [c["neuron"] for c in got["correlated"]]
    with pytest.raises(neuron_profile.NeuronUnavailable, match="Neuron 9 of layer_1_mlp holds inf or NaN"):
        neuron_profile.profile(folder, KEY, 9)


def test_a_new_threshold_counts_on_the_kept_values(engine_folder, real):
    x = real[0][:, NEURON]
    for threshold in (-0.05, 0.0, float(np.median(x)), 10.0):
        assert (
            neuron_profile.profile(engine_folder, KEY, NEURON, threshold=threshold)["density"]
            == (x > threshold).mean()
        )
