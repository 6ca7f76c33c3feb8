"""One neuron of one (layer, hook) of an extraction, read from its saved arrays: what the neuron page
shows. Over the real tokens only (padding never enters), a chunk of tokens at a time, so memory
stays bounded whatever the extraction's size; nothing runs the model again.

- density: the share of real tokens whose value is above `threshold`;
- histogram: NEURON_BINS equal bins over the neuron's own range [min, max];
- bands: that range cut into `bands` equal intervals, each with its count and up to `per_band`
  examples drawn uniformly from the tokens in it (a seeded reservoir: the same examples every
  time), so that weak activations show beside the strong ones;
- correlated: the neurons of the same (layer, hook) whose values correlate most with it over
  tokens (Pearson's r, on values shifted by the first chunk's means against cancellation).

Two passes over the file: the range (and the correlation sums), then the bins and bands; the last
few neurons' figures are kept, so a new threshold reads no array. Django-free, like the rest of ml/.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .exports.common import ExportError
from .exports.source import Source

NEURON_BINS = 40
BANDS = 10
PER_BAND = 3
CORRELATED = 10
CHUNK_BYTES = 64 * 2**20  # float64 bytes of a chunk of tokens x hidden
SEED = 0


class NeuronUnavailable(UserError):
    pass


def profile(
    folder: Path,
    key: str,
    neuron: int,
    *,
    threshold: float = 0.0,
    bands: int = BANDS,
    per_band: int = PER_BAND,
    correlated: int = CORRELATED,
    chunk_bytes: int = CHUNK_BYTES,
) -> dict[str, Any]:
    folder = Path(folder)
    try:
        stamp = tuple(
            (p.stat().st_mtime_ns, p.stat().st_size)
            for p in (folder / "metadata.json", folder / f"{key}.npy")
        )
    except OSError:
        stamp = ()  # Source says what is missing
    figures, values = _cached(str(folder), key, neuron, bands, per_band, correlated, chunk_bytes, stamp)
    # The threshold alone changes: counted on the neuron's sorted values, kept with the figures.
    above = len(values) - int(np.searchsorted(values, threshold, side="right"))
    return {**figures, "threshold": threshold, "density": above / len(values)}


# The figures of the last few neurons opened, with their sorted values (8 bytes a real token):
# a new threshold, or the page opened again, reads no array. Keyed by the files' size and time.
@lru_cache(maxsize=4)
def _cached(folder, key, neuron, bands, per_band, correlated, chunk_bytes, _stamp):
    try:
        source = Source(Path(folder), [key])
    except ExportError as exc:
        raise NeuronUnavailable(str(exc)) from None
    hidden = source.hooks[0].hidden_size
    if not 0 <= neuron < hidden:
        raise NeuronUnavailable(f"{key} has neurons 0 to {hidden - 1}.")
    step = max(1, chunk_bytes // (8 * hidden))
    first = _first_pass(source, key, neuron, step)
    low, high = first["min"], first["max"]
    counts = np.zeros(NEURON_BINS, dtype=np.int64)
    band_counts = np.zeros(bands, dtype=np.int64)
    reservoir = _Reservoir(bands, per_band)
    rng = np.random.default_rng(SEED)
    column = []
    for values, samples, positions in _chunks(source, key, step, neuron_only=neuron):
        counts += np.bincount(_slot(values, low, high, NEURON_BINS), minlength=NEURON_BINS)
        band = _slot(values, low, high, bands)
        band_counts += np.bincount(band, minlength=bands)
        reservoir.offer(band, rng.random(len(values)), values, samples, positions)
        column.append(values.copy())
    width = (high - low) / NEURON_BINS
    band_width = (high - low) / bands
    figures = {
        "key": key,
        "neuron": neuron,
        "tokens": first["tokens"],
        "min": low,
        "max": high,
        "mean": first["mean"],
        "histogram": {
            "edges": [low + i * width for i in range(NEURON_BINS)] + [high],
            "counts": [int(c) for c in counts],
            "below": 0,
            "above": 0,
            "nonfinite": 0,
        },
        "bands": [
            {
                "low": low + b * band_width,
                "high": low + (b + 1) * band_width if b < bands - 1 else high,
                "count": int(band_counts[b]),
                "examples": reservoir.examples(b),
            }
            for b in range(bands)
        ],
        "correlated": _most_correlated(first, neuron, correlated),
    }
    return figures, np.sort(np.concatenate(column))


def _chunks(source: Source, key: str, step: int, neuron_only: int | None = None):
    """(values, sample indexes, positions) of every real token, a chunk at a time: values
    [tokens, hidden] float64, or [tokens] of one neuron."""
    hidden = source.hooks[0].hidden_size
    for start in range(0, source.total, step):
        stop = min(source.total, start + step)
        into = {
            key: np.empty((stop - start, hidden)),
            "sample_index": np.empty(stop - start, dtype=np.int64),
            "position": np.empty(stop - start, dtype=np.int64),
        }
        source.fill(start, stop, into)
        values = into[key] if neuron_only is None else into[key][:, neuron_only]
        yield values, into["sample_index"], into["position"]


def _first_pass(source: Source, key: str, neuron: int, step: int) -> dict[str, Any]:
    """The neuron's range and mean, and the sums of its correlation with every neuron. Its own
    non-finite values (float16 overflow) are refused: they have no range."""
    sums: dict[str, Any] = {"tokens": 0, "min": math.inf, "max": -math.inf}
    for values, _samples, _positions in _chunks(source, key, step):
        x = values[:, neuron]
        if not np.isfinite(x).all():
            raise NeuronUnavailable(
                f"Neuron {neuron} of {key} holds inf or NaN values (float16 overflow): no range to show."
            )
        finite = np.isfinite(values).all(axis=0)
        if not finite.all():  # another neuron overflowed: it is left out of the correlations
            sums["broken"] = sums.get("broken", np.zeros(values.shape[1], dtype=bool)) | ~finite
            values = np.where(finite, values, 0.0)
        if "shift" not in sums:
            sums["shift"] = values.mean(axis=0)
            sums.update(x=0.0, xx=0.0, y=np.zeros(values.shape[1]), yy=np.zeros(values.shape[1]))
            sums["xy"] = np.zeros(values.shape[1])
        shifted = values - sums["shift"]
        xs = shifted[:, neuron]
        sums["x"] += xs.sum()
        sums["xx"] += xs @ xs
        sums["y"] += shifted.sum(axis=0)
        sums["yy"] += np.einsum("ij,ij->j", shifted, shifted)
        sums["xy"] += xs @ shifted
        sums["tokens"] += len(x)
        sums["min"], sums["max"] = min(sums["min"], float(x.min())), max(sums["max"], float(x.max()))
    n = sums["tokens"]
    sums["mean"] = float(sums["shift"][neuron] + sums["x"] / n)
    return sums


def _most_correlated(sums: dict[str, Any], neuron: int, limit: int) -> list[dict[str, Any]]:
    n = sums["tokens"]
    covariance = sums["xy"] / n - (sums["x"] / n) * (sums["y"] / n)
    variance_x = max(sums["xx"] / n - (sums["x"] / n) ** 2, 0.0)
    variance_y = np.maximum(sums["yy"] / n - (sums["y"] / n) ** 2, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.clip(covariance / np.sqrt(variance_x * variance_y), -1.0, 1.0)
    r[neuron] = np.nan
    r[~((variance_y > 0) & (variance_x > 0))] = np.nan
    if "broken" in sums:
        r[sums["broken"]] = np.nan
    defined = np.flatnonzero(~np.isnan(r))
    best = defined[np.argsort(-r[defined], kind="stable")[:limit]]
    return [{"neuron": int(j), "correlation": float(r[j])} for j in best]


def _slot(values: np.ndarray, low: float, high: float, slots: int) -> np.ndarray:
    """Each value's equal-width slot of [low, high]; the maximum falls in the last one."""
    if high <= low:
        return np.zeros(len(values), dtype=np.int64)
    index = np.floor((values - low) / (high - low) * slots).astype(np.int64)
    return np.clip(index, 0, slots - 1)


class _Reservoir:
    """Per band, the `size` tokens with the smallest random keys seen so far: a uniform sample
    without replacement of the band's tokens, whatever the order they come in."""

    def __init__(self, bands: int, size: int):
        self.bands, self.size = bands, size
        empty = np.empty(0)
        self.kept = {
            "band": empty.astype(np.int64),
            "key": empty,
            "value": empty,
            "sample": empty.astype(np.int64),
            "position": empty.astype(np.int64),
        }

    def offer(self, band, keys, values, samples, positions) -> None:
        merged = {
            name: np.concatenate([self.kept[name], new])
            for name, new in zip(self.kept, (band, keys, values, samples, positions), strict=True)
        }
        order = np.lexsort((merged["key"], merged["band"]))
        ranked = merged["band"][order]
        first_of_band = np.searchsorted(ranked, ranked, side="left")
        keep = order[np.arange(len(order)) - first_of_band < self.size]
        self.kept = {name: array[keep] for name, array in merged.items()}

    def examples(self, band: int) -> list[dict[str, Any]]:
        """The band's kept tokens, strongest first."""
        chosen = np.flatnonzero(self.kept["band"] == band)
        chosen = chosen[np.argsort(-self.kept["value"][chosen], kind="stable")]
        return [
            {
                "value": float(self.kept["value"][i]),
                "sample": int(self.kept["sample"][i]),
                "token": int(self.kept["position"][i]),
            }
            for i in chosen
        ]
