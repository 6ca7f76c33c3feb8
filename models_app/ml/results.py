"""What a completed extraction writes beside its arrays: each (layer, hook)'s top-K examples and
metadata.json, each under a temporary name renamed when complete."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .capture import Target
from .outputs import PARTIAL


def save_topk(folder: Path, targets: list[Target]) -> None:
    for target in targets:
        final = folder / f"topk_{target.key}.npz"
        partial = folder / f"topk_{target.key}.npz{PARTIAL}"
        with open(partial, "wb") as handle:
            np.savez(handle, **target.topk.arrays())
        os.replace(partial, final)


def write_json(path: Path, data: dict) -> None:
    partial = path.with_name(path.name + PARTIAL)
    partial.write_text(json.dumps(data, indent=2, default=_json_default, allow_nan=False))
    os.replace(partial, path)


def finite(value: Any) -> Any:
    """inf / NaN (a float16 overflow) become None: JSON has no such numbers, and PostgreSQL's
    JSONB refuses them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
