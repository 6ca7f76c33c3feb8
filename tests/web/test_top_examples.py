"""Top examples of a neuron: the page shows exactly a brute-force top-K over the saved arrays,
with the peak token highlighted and decoded by the model's own tokenizer."""

from __future__ import annotations

import html as html_lib
import re

import numpy as np
import pytest
from django.urls import reverse
from tokenizers import Tokenizer

from tests.helpers import HTMX

# Slow: every test first downloads a model and adds a dataset by their real jobs (`ready`) and extracts.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def brute_force(folder, key, neuron, k):
    acts = np.load(folder / f"{key}.npy")[:, :, neuron].astype(np.float64)
    mask = np.load(folder / "attention_mask.npy").astype(bool)
    acts[~mask] = -np.inf
    order = np.argsort(-acts, axis=None, kind="stable")[:k]
    return [(acts.flat[i], *np.unravel_index(i, acts.shape)) for i in order]


def shown(client, record, **query):
    page = client.get(reverse("models_app:extraction-examples", args=[record.pk]), query).content.decode()
    examples = re.findall(r'<li class="example" id="example-\d+">(.*?)</li>', page, re.S)
    return page, examples


def test_the_examples_equal_a_brute_force_top_k(owner_client, extract, settings):
    record = extract(top_k=5, layers=[1], hooks=["mlp"])
    folder = settings.ACTIVATIONS_DIR / str(record.pk)
    tokenizer = Tokenizer.from_file(str(record.model.file_path) + "/tokenizer.json")
    tokens = np.load(folder / "tokens.npy")
    for neuron in (0, 17, 127):
        _page, examples = shown(owner_client, record, target="layer_1_mlp", neuron=neuron)
        expected = brute_force(folder, "layer_1_mlp", neuron, 5)
        acts = np.load(folder / "layer_1_mlp.npy")[:, :, neuron]
        assert len(examples) == 5
        positions = set()
        for example, (value, _sample, _token) in zip(examples, expected, strict=True):
            # Equal values (the same tokens in two samples) may come in either order: the values
            # must be the brute-force ones, and each shown position must hold its value.
            sample, token = map(int, re.search(r"sample (\d+), token (\d+)", example).groups())
            assert f"{value:.4f}" in example and acts[sample, token] == np.float32(value)
            positions.add((sample, token))
            peak = re.findall(r'<span class="tok peak[^"]*"[^>]*>(.*?)</span>', example, re.S)
            want = tokenizer.decode([int(tokens[sample, token])], skip_special_tokens=False)
            assert len(peak) == 1 and html_lib.unescape(peak[0]).strip() == want.strip()
        assert len(positions) == 5


def test_the_window_holds_the_chosen_context_on_each_side(owner_client, extract, settings):
    record = extract(top_k=3, layers=[0], hooks=["residual"])
    assert record.context_prefix_tokens == 25 and record.context_suffix_tokens == 25
    folder = settings.ACTIVATIONS_DIR / str(record.pk)
    mask = np.load(folder / "attention_mask.npy").astype(bool)
    for prefix, suffix in ((2, 1), (0, 0), (25, 25)):
        _page, examples = shown(
            owner_client, record, target="layer_0_residual", neuron=3, prefix=prefix, suffix=suffix
        )
        assert len(examples) == 3
        for example in examples:
            sample, token = map(int, re.search(r"sample (\d+), token (\d+)", example).groups())
            length = int(mask[sample].sum())
            want = min(length, token + suffix + 1) - max(0, token - prefix)
            assert example.count('class="tok') == want


def test_without_a_neuron_it_lists_the_strongest_neurons(owner_client, extract, settings):
    record = extract(top_k=2, layers=[0], hooks=["mlp"])
    folder = settings.ACTIVATIONS_DIR / str(record.pk)
    acts = np.load(folder / "layer_0_mlp.npy").astype(np.float64)
    mask = np.load(folder / "attention_mask.npy").astype(bool)
    peaks = acts[mask].max(axis=0)
    page = owner_client.get(
        reverse("models_app:extraction-examples", args=[record.pk]),
        {"target": "layer_0_mlp"},
        **HTMX,
        HTTP_HX_TARGET="examples",
    ).content.decode()
    neurons = [int(n) for n in re.findall(r"<tr><td>(\d+)</td>", page)]
    assert neurons == list(np.argsort(-peaks, kind="stable")[:20])
    assert "<html" not in page  # an htmx request gets the fragment


def test_a_neuron_out_of_range_is_explained(owner_client, extract):
    record = extract(layers=[0], hooks=["mlp"])
    page, examples = shown(owner_client, record, target="layer_0_mlp", neuron=128)
    assert "This extraction has neurons 0 to 127." in page and examples == []
    page, _ = shown(owner_client, record, target="layer_9_mlp", neuron=1)
    assert "Select a valid choice" in page


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_each_token_gets_its_share_of_non_ascii_text(model_sources, family):
    from models_app.services import examples

    tokenizer = Tokenizer.from_file(str(model_sources[family] / "tokenizer.json"))
    text = "héllo 日本語 wörld café 😀 the residual stream carries features across many layers."
    ids = tokenizer.encode(text).ids
    pieces = examples._decoder(str(model_sources[family]))(ids)
    assert len(pieces) == len(ids) and "\ufffd" not in "".join(pieces)
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=False)
    assert any(piece == "" for piece in pieces)  # bytes of a character split across tokens


def test_a_model_without_tokenizer_json_says_so(owner_client, extract):
    from pathlib import Path

    record = extract(layers=[0], hooks=["mlp"])
    (Path(record.model.file_path) / "tokenizer.json").unlink()
    page, examples = shown(owner_client, record, target="layer_0_mlp", neuron=1)
    assert "has no tokenizer.json" in page and examples == []
