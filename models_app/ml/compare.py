"""Extractions of one model in several formats, compared on the real tokens they share: for each
(layer, hook) the base and another extraction both hold, how far the other's activations lie from
the base's. The base is the reference `a`, each other extraction `b`; over real tokens only
(padding never enters):

- cosine: the mean over tokens of cos(a_t, b_t); a token whose two vectors are both zero counts
  as 1, one whose single vector is zero as 0;
- relative_error: ||a - b||_F / ||a||_F;
- sqnr_db: 10 log10(sum a^2 / sum (a - b)^2), None with `equal` when nothing differs;
- top_neuron_overlap: per token, the share of the 10 largest |a| dimensions that are also among
  the 10 largest |b|, averaged;
- drifting_neurons: the neurons whose values over tokens correlate least between a and b.

The arrays are read a chunk of tokens at a time, so memory stays bounded whatever their size.
Django-free, like the rest of ml/: the job and the command call `compare`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import Cancelled, UserError
from .exports.common import ExportError
from .exports.source import Source, read_metadata

TOP_NEURONS = 10  # per token, the largest |value| dimensions top_neuron_overlap compares
DRIFTING = 10  # neurons listed per (layer, hook), the least correlated first
CHUNK_BYTES = 64 * 2**20  # float64 bytes of every array of a chunk together


class ComparisonError(UserError):
    """Extractions that cannot be compared, explained for the user."""


class ComparisonCancelled(Cancelled):
    pass


@dataclass
class ComparisonProgress:
    tokens_done: int
    tokens_total: int


@dataclass
class _Sums:
    """The running sums of one (other extraction, layer, hook), all float64."""

    hidden: int
    tokens: int = 0
    a_squared: float = 0.0
    difference_squared: float = 0.0
    cosine: float = 0.0
    overlap: float = 0.0
    # Per neuron, for the correlation, on values shifted by the first chunk's means (so that a
    # neuron with a large mean and a small spread loses no precision to cancellation).
    shift: tuple[np.ndarray, np.ndarray] | None = None
    moments: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        """One chunk: `a`, `b` [tokens, hidden] float64 of the same tokens."""
        difference = a - b
        self.tokens += len(a)
        self.a_squared += float(np.einsum("ij,ij->", a, a))
        self.difference_squared += float(np.einsum("ij,ij->", difference, difference))
        norm_a, norm_b = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
        dot = np.einsum("ij,ij->i", a, b)
        both = norm_a * norm_b
        with np.errstate(divide="ignore", invalid="ignore"):
            cosine = np.where(both > 0, dot / both, np.where((norm_a == 0) & (norm_b == 0), 1.0, 0.0))
        self.cosine += float(cosine.sum())
        self.overlap += float(_top_overlap(a, b).sum())
        if self.shift is None:
            self.shift = (a.mean(axis=0), b.mean(axis=0))
            self.moments = {name: np.zeros(self.hidden) for name in ("a", "b", "aa", "bb", "ab")}
        x, y = a - self.shift[0], b - self.shift[1]
        m = self.moments
        m["a"] += x.sum(axis=0)
        m["b"] += y.sum(axis=0)
        m["aa"] += np.einsum("ij,ij->j", x, x)
        m["bb"] += np.einsum("ij,ij->j", y, y)
        m["ab"] += np.einsum("ij,ij->j", x, y)

    def correlations(self) -> np.ndarray:
        """Per neuron, Pearson's r of a and b over the tokens; NaN where either is constant."""
        n, m = self.tokens, self.moments
        mean_a, mean_b = m["a"] / n, m["b"] / n
        covariance = m["ab"] / n - mean_a * mean_b
        variance_a = np.maximum(m["aa"] / n - mean_a**2, 0.0)
        variance_b = np.maximum(m["bb"] / n - mean_b**2, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = covariance / np.sqrt(variance_a * variance_b)
        return np.where((variance_a > 0) & (variance_b > 0), np.clip(r, -1.0, 1.0), np.nan)

    def result(self) -> dict[str, Any]:
        equal = self.difference_squared == 0.0
        relative_error: float | None
        if self.a_squared > 0:
            relative_error = math.sqrt(self.difference_squared / self.a_squared)
        else:  # the base is all zeros: an error relative to it means nothing unless both are
            relative_error = 0.0 if equal else None
        sqnr = (
            None
            if equal or self.a_squared == 0
            else 10 * math.log10(self.a_squared / self.difference_squared)
        )
        r = self.correlations()
        defined = np.flatnonzero(~np.isnan(r))
        drifting = defined[np.argsort(r[defined], kind="stable")[:DRIFTING]]
        return {
            "tokens": self.tokens,
            "cosine": self.cosine / self.tokens,
            "relative_error": relative_error,
            "sqnr_db": sqnr,
            "equal": equal,
            "top_neuron_overlap": self.overlap / self.tokens,
            "drifting_neurons": [{"neuron": int(j), "correlation": float(r[j])} for j in drifting],
        }


def _top_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per token (row), the share of its TOP_NEURONS largest |a| dimensions among the largest |b|."""
    k = min(TOP_NEURONS, a.shape[1])
    top_a = np.argpartition(-np.abs(a), k - 1, axis=1)[:, :k]
    top_b = np.argpartition(-np.abs(b), k - 1, axis=1)[:, :k]
    rows = np.arange(len(a))[:, None]
    in_a = np.zeros(a.shape, dtype=bool)
    in_a[rows, top_a] = True
    return in_a[rows, top_b].sum(axis=1) / k


def describe(folder: Path) -> dict[str, Any]:
    """What a comparison needs to know of an extraction folder, from its metadata.json alone (no
    array is read: a form checks comparability with it before any job starts)."""
    try:
        return summarize(read_metadata(Path(folder)))
    except ExportError as exc:
        raise ComparisonError(str(exc)) from None


def summarize(meta: dict[str, Any]) -> dict[str, Any]:
    """What `why_not_comparable` reads of an extraction, from its metadata (a record keeps a copy)."""
    model, dataset = meta.get("model") or {}, meta.get("dataset") or {}
    return {
        "id": meta.get("extraction_id"),
        "repo_id": model.get("repo_id"),
        "commit": model.get("commit_sha"),
        "format": model.get("effective_quantization"),
        "dataset": dataset.get("id"),
        "samples": meta.get("samples"),
        "context_length": meta.get("context_length"),
        "hooks": list(meta.get("statistics") or {}),
    }


def why_not_comparable(base: dict[str, Any], other: dict[str, Any]) -> str | None:
    """None when `other` (a `describe`) can be compared with `base`, else the reason, for the user."""
    for name, what in (
        ("repo_id", "model repository"),
        ("commit", "model commit"),
        ("dataset", "dataset"),
        ("samples", "number of samples"),
        ("context_length", "context length"),
    ):
        if base[name] != other[name]:
            return f"Extraction {other['id']} has another {what} ({other[name]} against {base[name]})."
    if not set(base["hooks"]) & set(other["hooks"]):
        return f"Extraction {other['id']} shares no (layer, hook) with extraction {base['id']}."
    return None


def compare(
    base: Path,
    others: Sequence[Path],
    *,
    on_progress: Callable[[ComparisonProgress], None] = lambda p: None,
    should_cancel: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """The comparison of each of `others` with `base` (folders of completed extractions), as the
    command's --json prints it: {"base": id, "others": [{"id", "format", "hooks": [...]}]}."""
    if not others:
        raise ComparisonError("Choose at least one extraction to compare with.")
    sources = [_open(folder) for folder in (base, *others)]
    reference, described = sources[0], summarize(sources[0].metadata)
    sums: list[dict[str, _Sums]] = []
    for source in sources[1:]:
        other = summarize(source.metadata)
        if reason := why_not_comparable(described, other):
            raise ComparisonError(reason)
        if not np.array_equal(source.lengths, reference.lengths):
            raise ComparisonError(
                f"Extraction {other['id']} has other real tokens per sample:"
                " the extractions did not read the same texts."
            )
        shared = [h for h in reference.hooks if h.key in other["hooks"]]
        sums.append({h.key: _Sums(h.hidden_size) for h in shared})
    _stream(sources, sums, on_progress, should_cancel)
    return {
        "base": described["id"],
        "others": [
            {
                "id": source.metadata.get("extraction_id"),
                "format": (source.metadata.get("model") or {}).get("effective_quantization"),
                "hooks": [
                    {"layer": h.layer, "hook": h.hook, "module": h.module, **sums[i][h.key].result()}
                    for h in reference.hooks
                    if h.key in sums[i]
                ],
            }
            for i, source in enumerate(sources[1:])
        ],
    }


def _stream(sources, sums, on_progress, should_cancel) -> None:
    """Every real token once, a chunk at a time, through every (other, hook)'s sums."""
    reference = sources[0]
    row_bytes = 8 * sum(h.hidden_size for source in sources for h in source.hooks)
    step = max(1, CHUNK_BYTES // row_bytes)
    total = reference.total
    for first in range(0, total, step):
        if should_cancel():
            raise ComparisonCancelled()
        stop = min(total, first + step)
        chunks = []
        for source in sources:
            into = {"token_ids": np.empty(stop - first, dtype=np.int64)}
            into.update({h.key: np.empty((stop - first, h.hidden_size)) for h in source.hooks})
            source.fill(first, stop, into)
            chunks.append(into)
        for i, other in enumerate(chunks[1:]):
            if not np.array_equal(other["token_ids"], chunks[0]["token_ids"]):
                raise ComparisonError(
                    f"Extraction {sources[i + 1].metadata.get('extraction_id')} read other tokens:"
                    " the extractions did not read the same texts."
                )
            for key, running in sums[i].items():
                running.add(chunks[0][key], other[key])
        on_progress(ComparisonProgress(stop, total))


def _open(folder: Path) -> Source:
    try:
        return Source(Path(folder))
    except ExportError as exc:
        raise ComparisonError(str(exc)) from None
