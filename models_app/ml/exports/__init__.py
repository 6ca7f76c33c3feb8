"""Exports of a completed extraction folder into the files sparse-autoencoder trainers read.

- "saelens" (saelens.py): a Hugging Face `datasets` directory that SAELens 6 reads as a
  pre-computed activation cache: rows of packed real tokens, one column per hook named after its
  module path, plus `token_ids`; optionally shuffled with a seed.
- "tokens" (tokens.py): every real token flat, per hook [n_real_tokens, d], with its token id,
  sample and position beside it.

Both read the extraction's .npy files through memory maps a batch at a time (memory stays bounded
whatever the extraction's size), never export padding, report progress and check for a cancel
between batches, write a manifest.json with the activations' provenance, and write into
`{out}.partial`, renamed to `out` once complete: a cancelled or failed export leaves nothing.
Django-free, like the rest of the library:

    export("saelens", Path("data/activations/7"), Path("cache"), context_size=128, shuffle_seed=42)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import ExportCancelled, ExportError, ExportProgress
from .saelens import check_saelens, export_saelens
from .source import Source
from .tokens import export_tokens

FORMATS = ("saelens", "tokens")

__all__ = [
    "FORMATS",
    "ExportCancelled",
    "ExportError",
    "ExportProgress",
    "check",
    "export",
    "export_saelens",
    "export_tokens",
]


def export(fmt: str, folder: Path, out: Path, **options: Any) -> dict[str, Any]:
    """Export in `fmt` (one of FORMATS) with that format's options; returns the manifest."""
    if fmt == "saelens":
        return export_saelens(folder, out, **options)
    if fmt == "tokens":
        return export_tokens(folder, out, **options)
    raise ExportError(f"The export format must be one of {', '.join(FORMATS)}.")


def check(fmt: str, folder: Path, **options: Any) -> None:
    """Raise the ExportError `export` would raise for these options, before anything is written
    (the extraction's files are opened, not read): what a form says at once."""
    if fmt == "saelens":
        check_saelens(folder, options.get("hooks"), options.get("context_size"), options.get("shuffle_seed"))
    elif fmt == "tokens":
        Source(folder, options.get("hooks"))
    else:
        raise ExportError(f"The export format must be one of {', '.join(FORMATS)}.", "format")
