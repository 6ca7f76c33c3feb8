"""Comparing extractions across formats (ml/compare.py), each figure against numpy over the saved
arrays' real tokens, on folders written as the engine writes them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models_app.ml import compare
from models_app.ml.compare import ComparisonError

SAMPLES, CONTEXT, HIDDEN = 12, 9, 16
HOOKS = {"layer_0_residual": (0, "residual"), "layer_1_mlp": (1, "mlp")}


def lengths_of(seed: int = 0) -> np.ndarray:
    lengths = np.random.default_rng(seed).integers(1, CONTEXT + 1, SAMPLES)
    lengths[3] = 0  # a sample with no real token
    return lengths


def write_extraction(folder, extraction_id, values, *, dtype="float32", commit="abc", dataset=1, tokens=None):
    """An extraction's folder: `values` maps a hook key to its [samples, context, hidden] array,
    whose padding positions hold whatever the test put there."""
    folder.mkdir(parents=True)
    lengths = lengths_of()
    mask = (np.arange(CONTEXT)[None, :] < lengths[:, None]).astype(np.int8)
    ids = tokens if tokens is not None else np.random.default_rng(9).integers(0, 50, (SAMPLES, CONTEXT))
    np.save(folder / "tokens.npy", (ids * mask).astype(np.int32))
    np.save(folder / "attention_mask.npy", mask)
    statistics = {}
    for key, array in values.items():
        layer, hook = HOOKS[key]
        np.save(folder / f"{key}.npy", array.astype(dtype))
        statistics[key] = {
            "layer": layer,
            "hook": hook,
            "module": f"model.layers.{layer}.{hook}",
            "file": f"{key}.npy",
            "shape": [SAMPLES, CONTEXT, HIDDEN],
        }
    meta = {
        "complete": True,
        "dtype": dtype,
        "real_tokens": int(mask.sum()),
        "samples": SAMPLES,
        "context_length": CONTEXT,
        "statistics": statistics,
        "extraction_id": extraction_id,
        "model": {
            "repo_id": "org/tiny",
            "commit_sha": commit,
            "effective_quantization": f"fmt{extraction_id}",
        },
        "dataset": {"id": dataset},
    }
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder


def real(folder, key) -> np.ndarray:
    mask = np.load(folder / "attention_mask.npy").astype(bool)
    return np.load(folder / f"{key}.npy")[mask].astype(np.float64)


def activations(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(SAMPLES, CONTEXT, HIDDEN)) * np.linspace(0.1, 3, HIDDEN)


@pytest.fixture
def pair(tmp_path):
    a = {key: activations(i) for i, key in enumerate(HOOKS)}
    b = {
        key: value + np.random.default_rng(7 + i).normal(size=value.shape) * 0.3
        for i, (key, value) in enumerate(a.items())
    }
    b["layer_0_residual"][0, 0] = 0.0  # one token zero in b only
    a["layer_1_mlp"][1, 0] = b["layer_1_mlp"][1, 0] = 0.0  # one token zero in both
    padding = ~(np.arange(CONTEXT)[None, :] < lengths_of()[:, None])
    for value in b.values():
        value[padding] = 1e6  # never read: padding is not compared
    return write_extraction(tmp_path / "1", 1, a), write_extraction(tmp_path / "2", 2, b)


def expected_figures(base, other, key) -> dict:
    a, b = real(base, key), real(other, key)
    norm_a, norm_b = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cosines = []
    for x, y, nx, ny in zip(a, b, norm_a, norm_b, strict=True):
        cosines.append(1.0 if nx == 0 and ny == 0 else 0.0 if nx == 0 or ny == 0 else x @ y / (nx * ny))
    overlaps = [
        len(set(np.argsort(-np.abs(x))[:10]) & set(np.argsort(-np.abs(y))[:10])) / 10
        for x, y in zip(a, b, strict=True)
    ]
    r = np.array([np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(HIDDEN)])
    return {
        "tokens": len(a),
        "cosine": np.mean(cosines),
        "relative_error": np.linalg.norm(a - b) / np.linalg.norm(a),
        "sqnr_db": 10 * math.log10((a**2).sum() / ((a - b) ** 2).sum()),
        "top_neuron_overlap": np.mean(overlaps),
        "correlations": r,
    }


def test_each_figure_equals_numpy_over_the_real_tokens(pair):
    base, other = pair
    result = compare.compare(base, [other])
    assert result["base"] == 1 and [o["id"] for o in result["others"]] == [2]
    assert result["others"][0]["format"] == "fmt2"
    hooks = result["others"][0]["hooks"]
    assert [(h["layer"], h["hook"]) for h in hooks] == [(0, "residual"), (1, "mlp")]
    for figures in hooks:
        key = f"layer_{figures['layer']}_{figures['hook']}"
        want = expected_figures(base, other, key)
        assert figures["tokens"] == want["tokens"]
        for name in ("cosine", "relative_error", "sqnr_db", "top_neuron_overlap"):
            assert figures[name] == pytest.approx(want[name], rel=1e-9), name
        assert figures["equal"] is False
        drifting = figures["drifting_neurons"]
        assert [d["neuron"] for d in drifting] == list(np.argsort(want["correlations"])[:10])
        for d in drifting:
            assert d["correlation"] == pytest.approx(want["correlations"][d["neuron"]], rel=1e-9)


def test_an_extraction_compared_with_itself_is_equal(pair, tmp_path):
    base, _other = pair
    same = write_extraction(tmp_path / "3", 3, {key: np.load(base / f"{key}.npy") for key in HOOKS})
    for figures in compare.compare(base, [same])["others"][0]["hooks"]:
        assert figures["cosine"] == pytest.approx(1.0, rel=1e-12)
        assert figures["relative_error"] == 0.0 and figures["sqnr_db"] is None and figures["equal"] is True
        assert figures["top_neuron_overlap"] == 1.0


def test_reading_in_small_chunks_changes_nothing(pair, monkeypatch):
    base, other = pair
    whole = compare.compare(base, [other])
    monkeypatch.setattr(compare, "CHUNK_BYTES", 8 * HIDDEN * 4 * 5)  # five tokens a chunk
    chunked = compare.compare(base, [other])
    for got, want in zip(chunked["others"][0]["hooks"], whole["others"][0]["hooks"], strict=True):
        for name in ("cosine", "relative_error", "sqnr_db", "top_neuron_overlap"):
            assert got[name] == pytest.approx(want[name], rel=1e-9)


def test_only_the_shared_hooks_are_compared_and_float16_reads_like_its_values(pair, tmp_path):
    base, _other = pair
    half = write_extraction(
        tmp_path / "4", 4, {"layer_1_mlp": np.load(base / "layer_1_mlp.npy")}, dtype="float16"
    )
    hooks = compare.compare(base, [half])["others"][0]["hooks"]
    assert [h["hook"] for h in hooks] == ["mlp"]
    assert hooks[0]["relative_error"] == pytest.approx(
        expected_figures(base, half, "layer_1_mlp")["relative_error"], rel=1e-9
    )
    assert 0 < hooks[0]["relative_error"] < 1e-3  # float16 rounding, nothing more


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"commit": "other"}, "another model commit"),
        ({"dataset": 2}, "another dataset"),
        ({"tokens": np.ones((SAMPLES, CONTEXT), dtype=np.int64)}, "read other tokens"),
    ],
)
def test_it_refuses_extractions_that_did_not_see_the_same_tokens(pair, tmp_path, change, message):
    base, _other = pair
    other = write_extraction(tmp_path / "5", 5, {k: np.load(base / f"{k}.npy") for k in HOOKS}, **change)
    with pytest.raises(ComparisonError, match=message):
        compare.compare(base, [other])


def test_it_refuses_extractions_sharing_no_hook(tmp_path):
    base = write_extraction(tmp_path / "1", 1, {"layer_0_residual": activations(0)})
    other = write_extraction(tmp_path / "2", 2, {"layer_1_mlp": activations(1)})
    with pytest.raises(ComparisonError, match="shares no"):
        compare.compare(base, [other])
