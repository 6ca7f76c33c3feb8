"""ml/unembedding.py reads column j of a model's unembedding from its safetensors files, without
torch or the model: equal to what transformers loads as the output embeddings, for every tiny
family (tied and untied), in bfloat16 too; the top and bottom tokens follow the weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from models_app.ml import unembedding
from tests.tinymodels import FAMILIES, build_model


def output_embeddings(folder) -> np.ndarray:
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return model.get_output_embeddings().weight.detach().double().numpy()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_it_reads_the_column_transformers_loads(model_sources, family):
    expected = output_embeddings(model_sources[family])
    for dimension in (0, 7, expected.shape[1] - 1):
        np.testing.assert_array_equal(
            unembedding.column(model_sources[family], dimension), expected[:, dimension]
        )


def test_bfloat16_weights_are_widened_exactly(tmp_path):
    folder = build_model("llama", tmp_path / "bf16")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    expected = model.get_output_embeddings().weight.detach().float().double().numpy()
    np.testing.assert_array_equal(unembedding.column(folder, 3), expected[:, 3])


def test_the_top_and_bottom_tokens_follow_the_weights(model_sources):
    weights = output_embeddings(model_sources["llama"])[:, 4]
    found = unembedding.effects(model_sources["llama"], 4, decode=lambda i: f"<{i}>", count=5)
    assert [t["token"] for t in found["top"]] == np.argsort(-weights, kind="stable")[:5].tolist()
    assert [t["token"] for t in found["bottom"]] == np.argsort(weights, kind="stable")[:5].tolist()
    assert found["top"][0]["text"] == f"<{found['top'][0]['token']}>"
    assert found["top"][0]["weight"] == weights.max()


def test_what_cannot_be_read_says_why(model_sources, tmp_path):
    with pytest.raises(unembedding.UnembeddingUnavailable, match="dimensions 0 to 127"):
        unembedding.column(model_sources["llama"], 128)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(unembedding.UnembeddingUnavailable, match="no safetensors files"):
        unembedding.column(tmp_path, 0)


def test_a_broken_safetensors_file_says_so(tmp_path):
    (tmp_path / "config.json").write_text('{"hidden_size": 8}')
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(unembedding.UnembeddingUnavailable, match="not a readable safetensors file"):
        unembedding.column(tmp_path, 0)
