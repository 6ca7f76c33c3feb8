"""ml/format_check.py on one tiny Llama in FP32, Q8, Q4 and Q2 (real bitsandbytes and HQQ layers
on the CPU): each figure equals numpy's over the models' own logits, a format against itself
differs by nothing, and the divergence grows as the format narrows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models_app.ml import format_check, loading
from models_app.ml.format_check import Format
from tests.helpers import SAMPLE_TEXTS

CONTEXT = 24


@pytest.fixture(scope="module")
def loaded(model_sources):
    """Each format loaded once for the module (the check itself is given loaders)."""
    models = {}
    for fmt in ("fp32", "q8", "q4", "q2"):
        models[fmt] = loading.load(model_sources["llama"], fmt, device="cpu")
        assert models[fmt].effective_format == fmt, models[fmt].fallback_reason
    return models


def formats(loaded, *names) -> list[Format]:
    def loader(name: str):
        return lambda: loaded[name]

    return [Format(name, i, loader(name)) for i, name in enumerate(names)]


def own_log_probs(model, tokenizer) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per text, unpadded: float32 next-token log-probabilities at positions 0..n-2, and the next
    tokens."""
    log_probs, targets = [], []
    for text in SAMPLE_TEXTS:
        ids = tokenizer(text, truncation=True, max_length=CONTEXT, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0, :-1].float()
        log_probs.append(torch.log_softmax(logits, dim=-1).numpy())
        targets.append(ids[0, 1:].numpy())
    return log_probs, targets


def test_each_figure_is_numpys_over_the_logits(loaded, tmp_path):
    result = format_check.check(
        formats(loaded, "fp32", "q4"), SAMPLE_TEXTS, context_length=CONTEXT, batch_size=1, scratch=tmp_path
    )
    p, targets = own_log_probs(loaded["fp32"].model, loaded["fp32"].tokenizer)
    q, _ = own_log_probs(loaded["q4"].model, loaded["q4"].tokenizer)
    P, Q, T = (np.concatenate(x).astype(np.float64) for x in (p, q, targets))
    T = T.astype(np.int64)
    kl = (np.exp(P) * (P - Q)).sum(axis=1)
    nll_p, nll_q = -P[np.arange(len(T)), T], -Q[np.arange(len(T)), T]
    got = result["formats"][0]
    assert result["positions"] == len(T) and result["reference"]["format"] == "fp32"
    assert got["format"] == "q4" and got["model_id"] == 1
    assert got["kl"]["mean"] == pytest.approx(kl.mean(), rel=1e-6)
    assert got["kl"]["median"] == pytest.approx(np.median(kl), rel=1e-6)
    assert got["kl"]["p99"] == pytest.approx(np.percentile(kl, 99), rel=1e-6)
    assert got["kl"]["max"] == pytest.approx(kl.max(), rel=1e-6)
    assert got["top1_agreement"] == pytest.approx((P.argmax(1) == Q.argmax(1)).mean())
    assert result["reference"]["perplexity"] == pytest.approx(np.exp(nll_p.mean()), rel=1e-6)
    assert got["perplexity"] == pytest.approx(np.exp(nll_q.mean()), rel=1e-6)
    assert got["perplexity_ratio"] == pytest.approx(np.exp(nll_q.mean() - nll_p.mean()), rel=1e-6)
    assert not list(tmp_path.iterdir())  # the reference's file is gone


def test_padding_changes_nothing_but_rounding(loaded, tmp_path):
    """(Q4: its weights alone are quantized. Q8's int8 layers pick outlier columns per batch, so
    its figures move a little with what is batched together, padding or not.)"""
    one = format_check.check(
        formats(loaded, "fp32", "q4"), SAMPLE_TEXTS, context_length=CONTEXT, batch_size=1, scratch=tmp_path
    )
    batched = format_check.check(
        formats(loaded, "fp32", "q4"), SAMPLE_TEXTS, context_length=CONTEXT, batch_size=4, scratch=tmp_path
    )
    assert batched["positions"] == one["positions"]
    assert batched["formats"][0]["kl"]["mean"] == pytest.approx(one["formats"][0]["kl"]["mean"], rel=1e-3)


def test_a_format_against_itself_differs_by_nothing(loaded, tmp_path):
    result = format_check.check(
        formats(loaded, "q4", "q4"), SAMPLE_TEXTS, context_length=CONTEXT, batch_size=2, scratch=tmp_path
    )
    same = result["formats"][0]
    assert same["kl"] == {"mean": 0.0, "median": 0.0, "p99": 0.0, "max": 0.0}
    assert same["top1_agreement"] == 1.0 and same["perplexity_ratio"] == 1.0


def test_the_divergence_grows_as_the_format_narrows(loaded, tmp_path):
    result = format_check.check(
        formats(loaded, "fp32", "q8", "q4", "q2"),
        SAMPLE_TEXTS * 2,
        context_length=CONTEXT,
        batch_size=4,
        scratch=tmp_path,
    )
    kl = [f["kl"]["mean"] for f in result["formats"]]
    assert 0 < kl[0] < kl[1] < kl[2], kl
    assert result["formats"][0]["top1_agreement"] >= result["formats"][2]["top1_agreement"]
    assert result["formats"][2]["top1_agreement"] < 1.0


def test_a_cancelled_check_stops_and_leaves_no_file(loaded, tmp_path):
    calls = {"n": 0}

    def should_cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(format_check.FormatCheckCancelled):
        format_check.check(
            formats(loaded, "fp32", "q8"),
            SAMPLE_TEXTS,
            context_length=CONTEXT,
            batch_size=1,
            scratch=tmp_path,
            should_cancel=should_cancel,
        )
    assert not list(tmp_path.iterdir())


def test_one_format_alone_is_refused(loaded, tmp_path):
    with pytest.raises(format_check.FormatCheckError, match="at least one other format"):
        format_check.check(
            formats(loaded, "fp32"), SAMPLE_TEXTS, context_length=CONTEXT, batch_size=1, scratch=tmp_path
        )


class ShiftedTokenizer:
    """A tokenizer that puts one more token before every text, as a tokenizer adding a BOS the
    reference's does not would (two real tokenizers that differ so are not among the tiny
    models: this wraps the real one)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.pad_token_id = tokenizer, tokenizer.pad_token_id

    def __call__(self, texts, **options):
        ids = self.tokenizer(texts, **options)["input_ids"]
        return {"input_ids": [[1, *row] for row in ids]}


def test_formats_whose_tokenizers_differ_are_refused(loaded, tmp_path):
    class Shifted:
        model, tokenizer = loaded["q8"].model, ShiftedTokenizer(loaded["q8"].tokenizer)

    formats = [Format("fp32", 0, lambda: loaded["fp32"]), Format("q8", 1, lambda: Shifted)]
    with pytest.raises(format_check.FormatCheckError, match="tokenizer splits the texts otherwise"):
        format_check.check(formats, SAMPLE_TEXTS, context_length=CONTEXT, batch_size=2, scratch=tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_token_the_reference_rules_out_adds_nothing_and_overflow_is_no_error():
    p = np.array([[-np.inf, np.log(0.5), np.log(0.5)]], dtype=np.float32)  # P(token 0) = 0
    q = np.log(np.array([[0.2, 0.4, 0.4]], dtype=np.float32))
    expected = 0.5 * (np.log(0.5) - np.log(0.4)) * 2
    assert format_check._divergence(p, q)[0] == pytest.approx(expected, rel=1e-6)
    assert format_check._perplexity(np.array([800.0])) == float("inf")
