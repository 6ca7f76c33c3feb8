"""A model's own tokenizer in the web process: its tokenizer.json read with the `tokenizers`
library (no torch, no transformers), for decoding top examples and counting a dataset's tokens."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path


def model_tokenizer(model_dir: str):
    """The model's tokenizer.json, or None if it has none (only a slow tokenizer). None is not
    cached, so a file that appears later is used."""
    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        return None
    return _cached(str(path), path.stat().st_mtime)


@lru_cache(maxsize=8)
def _cached(path: str, mtime: float):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)
