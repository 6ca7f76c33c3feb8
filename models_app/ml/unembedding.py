"""A dimension's direct effect on the logits, read from the weights: column j of the unembedding
W_U [vocabulary, hidden] says how much one unit along hidden dimension j adds to each token's logit.
Every hook the studio captures (residual stream, MLP output, attention output) has the residual
stream's width, so this holds for all of them. The final norm before the unembedding is ignored
(the page says so): it rescales the whole vector, and for LayerNorm recentres it, so the effect is
the direction's, not its exact size.

Read from the downloaded safetensors files without torch or the model: the file's JSON header gives
the tensor's dtype, shape and byte range, and only that tensor's column is read (memory-mapped).
bfloat16 is widened by its bits (numpy has no bfloat16). Django-free, like the rest of ml/.
"""

from __future__ import annotations

import json
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError

# Output-embedding tensors by name (the end of it), then the input embeddings a tied model
# reads its logits from. The first found of shape [vocabulary, hidden] is used.
OUTPUT_NAMES = ("lm_head.weight", "embed_out.weight")
TIED_NAMES = ("embed_tokens.weight", "wte.weight", "embed_in.weight", "word_embeddings.weight")
MAX_HEADER_BYTES = 100 * 2**20  # the format's own limit on a header
DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}


class UnembeddingUnavailable(UserError):
    pass


def column(model_dir: Path, dimension: int) -> np.ndarray:
    """W_U[:, dimension] as float64 [vocabulary] (read-only: it may be shared)."""
    model_dir = Path(model_dir)
    stamp = tuple(
        (p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(model_dir.glob("*.safetensors"))
    )
    return _column(str(model_dir), dimension, stamp)


# The last columns read: the neuron page asks again for each threshold, and a strided read of a
# large unembedding touches most of its pages. Keyed by the files' names, sizes and times.
@lru_cache(maxsize=8)
def _column(folder: str, dimension: int, _stamp: tuple) -> np.ndarray:
    found = _read(Path(folder), dimension)
    found.flags.writeable = False
    return found


def _read(model_dir: Path, dimension: int) -> np.ndarray:
    config = _read_json(model_dir / "config.json")
    hidden = config.get("hidden_size") or config.get("n_embd") or config.get("d_model")
    tensors = _tensors(model_dir)
    tied = bool(config.get("tie_word_embeddings", True))
    names = OUTPUT_NAMES + (TIED_NAMES if tied or not _any(tensors, OUTPUT_NAMES) else ())
    for suffix in names:
        for name, (path, entry) in tensors.items():
            shape = entry["shape"]
            if name.endswith(suffix) and len(shape) == 2 and (hidden is None or shape[1] == hidden):
                if not 0 <= dimension < shape[1]:
                    raise UnembeddingUnavailable(f"The unembedding has dimensions 0 to {shape[1] - 1}.")
                return _read_column(path, entry, dimension)
    raise UnembeddingUnavailable("No unembedding matrix found in the model's safetensors files.")


def _any(tensors: dict, suffixes: tuple[str, ...]) -> bool:
    return any(name.endswith(s) for name in tensors for s in suffixes)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UnembeddingUnavailable(f"{path.name} cannot be read: {exc}") from None


def _tensors(model_dir: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """name -> (file, header entry) of every tensor of the model's safetensors files."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise UnembeddingUnavailable("The model has no safetensors files to read its weights from.")
    found = {}
    for path in files:
        try:
            with open(path, "rb") as handle:
                (size,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(min(size, MAX_HEADER_BYTES)))
            if not isinstance(header, dict):
                raise ValueError("the header is not a JSON object")
        except (OSError, struct.error, ValueError) as exc:
            raise UnembeddingUnavailable(f"{path.name} is not a readable safetensors file: {exc}") from None
        for name, entry in header.items():
            if name != "__metadata__":
                found[name] = (path, {**entry, "data_start": 8 + size})
    return found


def _read_column(path: Path, entry: dict[str, Any], dimension: int) -> np.ndarray:
    dtype = DTYPES.get(entry["dtype"])
    if dtype is None:
        raise UnembeddingUnavailable(
            f"The unembedding is stored as {entry['dtype']}, which is not read here."
        )
    start, _end = entry["data_offsets"]
    rows, width = entry["shape"]
    matrix = np.memmap(path, dtype=dtype, mode="r", offset=entry["data_start"] + start, shape=(rows, width))
    values = np.array(matrix[:, dimension])
    del matrix
    if entry["dtype"] == "BF16":  # the upper half of a float32
        return (values.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return values.astype(np.float64)


def effects(model_dir: Path, dimension: int, decode, count: int = 10) -> dict[str, list[dict[str, Any]]]:
    """The `count` tokens whose logits one unit along `dimension` raises most, and lowers most:
    {"top": [{"token", "text", "weight"}], "bottom": [...]}. `decode(id) -> str`."""
    weights = column(model_dir, dimension)
    order = np.argsort(weights, kind="stable")

    def listed(ids) -> list[dict[str, Any]]:
        return [{"token": int(i), "text": decode(int(i)), "weight": float(weights[i])} for i in ids]

    return {"top": listed(order[::-1][:count]), "bottom": listed(order[:count])}
