"""Max-activating examples of one neuron, read from an extraction's files and decoded with the
model's own tokenizer.

topk_{layer}_{hook}.npz holds, per neuron, the K highest activations and their (sample, token)
positions; tokens.npy and attention_mask.npy give the text around each. Decoding uses the
`tokenizers` library on the model's tokenizer.json, so the web process never imports torch or
transformers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models import Extraction
from .tokens import model_tokenizer

STRONGEST = 20  # neurons listed when none is chosen
REPLACEMENT = "\ufffd"  # what a decoder gives for an incomplete UTF-8 sequence
RESTART_AFTER = 8  # tokens decoded together before the run restarts from its last token


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
    return [(int(n), float(peaks[n])) for n in order if peaks[n] != -np.inf]


def top_examples(record: Extraction, key: str, neuron: int, prefix: int, suffix: int) -> list[Example]:
    topk = _load_topk(record, key)
    if not 0 <= neuron < topk["values"].shape[0]:
        raise ExamplesUnavailable(f"Neuron {neuron} does not exist here.")
    found = zip(
        topk["values"][neuron], topk["sample_index"][neuron], topk["token_index"][neuron], strict=True
    )
    # A sample index of -1: fewer real tokens than K.
    return examples_at(record, key, neuron, [(v, s, t) for v, s, t in found if s >= 0], prefix, suffix)


def examples_at(
    record: Extraction,
    key: str,
    neuron: int,
    found: list[tuple[float, int, int]],
    prefix: int,
    suffix: int,
    peak: float | None = None,
) -> list[Example]:
    """Each (value, sample, token) decoded with `prefix` tokens before and `suffix` after, every
    token shaded by its activation relative to `peak` (default: the example's own value)."""
    arrays = {}
    for name in (f"{key}.npy", "tokens.npy", "attention_mask.npy"):
        path = record.file_path(name)
        if path is None:
            raise ExamplesUnavailable(f"{name} is missing from extraction {record.pk}.")
        arrays[name] = np.load(path, mmap_mode="r")
    decode = _decoder(record.model.file_path)
    if decode is None:
        raise ExamplesUnavailable(
            f"{record.model.name} has no tokenizer.json, so its tokens cannot be "
            "decoded here; the positions are in topk_{key}.npz.".replace("{key}", key)
        )
    examples = []
    for rank, (value, sample, token) in enumerate(found, start=1):
        length = int(arrays["attention_mask.npy"][sample].sum())
        start, stop = max(0, token - prefix), min(length, token + suffix + 1)
        ids = [int(i) for i in arrays["tokens.npy"][sample, start:stop]]
        acts = np.asarray(arrays[f"{key}.npy"][sample, start:stop, neuron], dtype=np.float64)
        scale = peak if peak is not None else float(value)
        scale = scale if scale > 0 else 1.0
        pieces = [
            Piece(text, float(a), start + i == token, float(min(max(a / scale, 0.0), 1.0)))
            for i, (text, a) in enumerate(zip(decode(ids), acts, strict=True))
        ]
        examples.append(Example(rank, float(value), int(sample), int(token), pieces))
    return examples


def _decoder(model_dir: str):
    tokenizer = model_tokenizer(model_dir)
    if tokenizer is None:
        return None

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=False)

    def pieces(ids: list[int]) -> list[str]:
        """Each token's share of the decoded text: decode a growing run of tokens and keep what
        is new. A character split across byte-level tokens decodes to U+FFFD until its last byte
        arrives, so the tokens before that get "" and the completing token the whole character.
        The run restarts every few tokens from its last token (kept, so that a word's leading
        space still decodes), which keeps the work linear in the window."""
        out, start, known = [], 0, ""
        for end in range(1, len(ids) + 1):
            text = decode(ids[start:end])
            if text.endswith(REPLACEMENT) and end < len(ids):
                out.append("")
                continue
            out.append(text[len(known) :] if text.startswith(known) else text)
            known = text
            if end - start >= RESTART_AFTER:
                anchor = decode(ids[end - 1 : end])
                if REPLACEMENT not in anchor:
                    start, known = end - 1, anchor
        return out

    return pieces
