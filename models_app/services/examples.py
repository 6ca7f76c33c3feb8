"""Max-activating examples of one neuron, read from an extraction's files and decoded with the
model's own tokenizer.

topk_{layer}_{hook}.npz holds, per neuron, the K highest activations and their (sample, token)
positions; tokens.npy and attention_mask.npy give the text around each. Decoding uses the
`tokenizers` library on the model's tokenizer.json, so the web process never imports torch or
transformers."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..models import Extraction

STRONGEST = 20  # neurons listed when none is chosen


class ExamplesUnavailable(Exception):
    """Said on the page instead of examples (files gone, not completed)."""


@dataclass
class Piece:
    text: str
    value: float
    is_peak: bool
    shade: float  # 0..1, this token's activation relative to the peak


@dataclass
class Example:
    rank: int
    value: float
    sample: int
    token: int
    pieces: list[Piece]


def _load_topk(record: Extraction, key: str) -> dict[str, np.ndarray]:
    path = record.file_path(f"topk_{key}.npz")
    if path is None:
        raise ExamplesUnavailable(f"topk_{key}.npz is missing from extraction {record.pk}.")
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def strongest_neurons(record: Extraction, key: str, limit: int = STRONGEST) -> list[tuple[int, float]]:
    """(neuron, maximum activation), highest first."""
    values = _load_topk(record, key)["values"]
    peaks = values[:, 0] if values.shape[1] else np.full(values.shape[0], -np.inf)
    order = np.argsort(-peaks, kind="stable")[:limit]
    return [(int(n), float(peaks[n])) for n in order if np.isfinite(peaks[n])]


def top_examples(record: Extraction, key: str, neuron: int, prefix: int, suffix: int) -> list[Example]:
    topk = _load_topk(record, key)
    if not 0 <= neuron < topk["values"].shape[0]:
        raise ExamplesUnavailable(f"Neuron {neuron} does not exist here.")
    arrays = {}
    for name in (f"{key}.npy", "tokens.npy", "attention_mask.npy"):
        path = record.file_path(name)
        if path is None:
            raise ExamplesUnavailable(f"{name} is missing from extraction {record.pk}.")
        arrays[name] = np.load(path, mmap_mode="r")
    decode = _decoder(record.model.file_path)
    examples = []
    for rank, (value, sample, token) in enumerate(zip(topk["values"][neuron], topk["sample_index"][neuron],
                                                      topk["token_index"][neuron]), start=1):
        if sample < 0 or not np.isfinite(value):
            continue  # fewer real tokens than K
        length = int(arrays["attention_mask.npy"][sample].sum())
        start, stop = max(0, token - prefix), min(length, token + suffix + 1)
        ids = [int(i) for i in arrays["tokens.npy"][sample, start:stop]]
        acts = np.asarray(arrays[f"{key}.npy"][sample, start:stop, neuron], dtype=np.float64)
        peak = float(value) if value > 0 else 1.0
        pieces = [Piece(text, float(a), start + i == token, float(min(max(a / peak, 0.0), 1.0)))
                  for i, (text, a) in enumerate(zip(decode(ids), acts))]
        examples.append(Example(rank, float(value), int(sample), int(token), pieces))
    return examples


def _decoder(model_dir: str):
    tokenizer = _tokenizer(model_dir)
    if tokenizer is None:
        return lambda ids: [f"⟨{i}⟩" for i in ids]

    def pieces(ids: list[int]) -> list[str]:
        # Decoding token by token breaks characters split across byte-level tokens; decoding
        # growing prefixes and keeping the new text gives each token exactly its share.
        out, previous = [], ""
        for end in range(1, len(ids) + 1):
            text = tokenizer.decode(ids[:end], skip_special_tokens=False)
            if text.startswith(previous):
                out.append(text[len(previous):])
            else:
                out.append(tokenizer.decode(ids[end - 1:end], skip_special_tokens=False))
            previous = text
        return out

    return pieces


@lru_cache(maxsize=8)
def _tokenizer(model_dir: str):
    from tokenizers import Tokenizer

    path = Path(model_dir) / "tokenizer.json"
    return Tokenizer.from_file(str(path)) if path.is_file() else None
