"""An extraction folder opened for export: metadata.json checked, the chosen hooks' .npy files as
read-only memory maps, and each sample's real tokens placed in one flat order (sample after
sample, in dataset order), from which any span of real tokens is copied out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..vocabulary import DTYPES
from .common import ExportError

MASK_CHUNK_BYTES = 16 * 2**20  # attention mask read at a time to count each sample's real tokens


@dataclass(frozen=True)
class ExportedHook:
    key: str  # layer_3_mlp: the extraction's name for it, and its file's
    layer: int
    hook: str
    module: str  # its module path in the model: SAELens' hook_name, and the saelens column
    file: str
    hidden_size: int

    def describe(self) -> dict[str, Any]:
        """What a manifest says of it."""
        return {key: value for key, value in asdict(self).items() if key != "file"}


class Source:
    def __init__(self, folder: Path, hooks: Sequence[str] | None = None):
        """`hooks`: keys such as "layer_3_mlp" (default: every hook the extraction holds)."""
        self.folder = Path(folder)
        self.metadata = read_metadata(self.folder)
        if self.metadata.get("dtype") not in DTYPES:
            raise ExportError(f"metadata.json names no known dtype ({self.metadata.get('dtype')!r}).")
        self.dtype = np.dtype(self.metadata["dtype"])
        self.hooks = _chosen_hooks(self.metadata.get("statistics") or {}, hooks)
        self.tokens = self._open("tokens.npy")
        samples, context = self.tokens.shape
        self.arrays = {h.key: self._open(h.file, (samples, context, h.hidden_size)) for h in self.hooks}
        self.lengths = _real_lengths(self._open("attention_mask.npy", (samples, context)))
        # starts[s]: the flat index of sample s's first real token; starts[-1]: how many in all.
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)])
        self.total = int(self.starts[-1])
        if self.metadata.get("real_tokens") not in (None, self.total):
            raise ExportError(
                f"attention_mask.npy holds {self.total} real tokens where metadata.json says"
                f" {self.metadata['real_tokens']}: the folder's files do not belong together."
            )
        if self.total == 0:
            raise ExportError("The extraction holds no real tokens.")

    def _open(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        path = self.folder / name
        if not path.is_file():
            raise ExportError(f"{name} is missing from {self.folder}.")
        try:
            array = np.load(path, mmap_mode="r")
        except ValueError as exc:
            raise ExportError(f"{name} is not a readable .npy file: {exc}") from None
        if (shape is None and array.ndim != 2) or (shape is not None and array.shape != shape):
            raise ExportError(f"{name} has shape {array.shape}, where {shape or 'two axes'} was expected.")
        return array

    def fill(self, first: int, stop: int, into: dict[str, np.ndarray]) -> None:
        """Real tokens [first, stop) of the flat order into the arrays of `into`, each stop - first
        long: one per hook key, and any of "token_ids", "sample_index" and "position"."""
        sample = int(np.searchsorted(self.starts, first, side="right")) - 1
        done = first
        while done < stop:
            position = done - int(self.starts[sample])
            count = min(stop - done, int(self.lengths[sample]) - position)
            if count > 0:  # a sample with no real tokens is passed over
                at = slice(done - first, done - first + count)
                taken = slice(position, position + count)
                for key, array in self.arrays.items():
                    into[key][at] = array[sample, taken]
                if "token_ids" in into:
                    into["token_ids"][at] = self.tokens[sample, taken]
                if "sample_index" in into:
                    into["sample_index"][at] = sample
                if "position" in into:
                    into["position"][at] = np.arange(position, position + count)
                done += count
            sample += 1

    def provenance(self) -> dict[str, Any]:
        """Where the activations come from, for a manifest."""
        meta = self.metadata
        model = meta.get("model") or {}
        return {
            "extraction_id": meta.get("extraction_id"),
            "model": {
                "repo_id": model.get("repo_id"),
                "revision": model.get("revision"),
                "commit": model.get("commit_sha"),
                "format": model.get("effective_quantization"),  # what it ran in, after any fallback
                "requested_format": model.get("requested_quantization"),
            },
            "dataset": meta.get("dataset"),
            "extracted_at": _when(meta),
            "hooks": [h.describe() for h in self.hooks],
            "dtype": self.dtype.name,
            "samples": int(self.tokens.shape[0]),
            "context_length": int(self.tokens.shape[1]),
            "real_tokens": self.total,
        }


def _when(meta: dict[str, Any]) -> str | None:
    started = (meta.get("timings") or {}).get("started")
    if not isinstance(started, (int, float)):
        return None
    return datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds")


def read_metadata(folder: Path) -> dict[str, Any]:
    """A completed extraction's metadata.json (ExportError when it is missing, unreadable or says
    the extraction is not complete)."""
    path = folder / "metadata.json"
    if not path.is_file():
        raise ExportError(f"{folder} has no metadata.json: it is not a completed extraction.")
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("complete") is not True:
        raise ExportError(f"{path} does not say the extraction is complete.")
    return meta


def _chosen_hooks(statistics: dict[str, Any], keys: Sequence[str] | None) -> list[ExportedHook]:
    if not statistics:
        raise ExportError("metadata.json lists no extracted hooks.")
    chosen = list(dict.fromkeys(keys)) if keys else list(statistics)
    unknown = [key for key in chosen if key not in statistics]
    if unknown:
        raise ExportError(
            f"No hook {unknown[0]} in this extraction: it has {', '.join(statistics)}.", "hooks"
        )
    hooks = []
    for key in chosen:
        entry = statistics[key]
        try:
            hooks.append(
                ExportedHook(
                    key=key,
                    layer=int(entry["layer"]),
                    hook=str(entry["hook"]),
                    module=str(entry["module"]),
                    file=str(entry["file"]),
                    hidden_size=int(entry["shape"][2]),
                )
            )
        except (KeyError, IndexError, TypeError, ValueError):
            raise ExportError(f"metadata.json's entry for {key} is incomplete.") from None
        if Path(hooks[-1].file).name != hooks[-1].file:
            raise ExportError(f"metadata.json names {hooks[-1].file!r}: not a file of the folder.")
    return hooks


def _real_lengths(mask: np.ndarray) -> np.ndarray:
    """Each sample's number of real tokens. The engine pads on the right, so they are the row's
    first ones; a mask that says otherwise is refused rather than exported wrong."""
    samples, context = mask.shape
    lengths = np.empty(samples, dtype=np.int64)
    step = max(1, MASK_CHUNK_BYTES // max(1, context))
    columns = np.arange(context)
    for first in range(0, samples, step):
        block = np.asarray(mask[first : first + step]) != 0
        counts = block.sum(axis=1)
        if not (block == (columns < counts[:, None])).all():
            raise ExportError("attention_mask.npy has padding before real tokens: not an extraction's mask.")
        lengths[first : first + len(block)] = counts
    return lengths
