"""What the resident-model tests extract from, and the files an extraction wrote, compared bit for
bit (in this process and in real workers alike)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TEXTS = [f"Sample {i}: the residual stream at layer {i % 3} carries feature {i * 7 % 11}." for i in range(24)]


def arrays(record) -> dict[str, np.ndarray]:
    """Every array an Extraction `record` wrote, by file name (and `file:key` inside an .npz)."""
    found = {}
    for path in sorted(Path(record.output_dir).iterdir()):
        if path.suffix == ".npy":
            found[path.name] = np.load(path)
        elif path.suffix == ".npz":
            with np.load(path) as archive:
                found.update({f"{path.name}:{key}": archive[key] for key in archive.files})
    return found


def assert_identical(first: dict, second: dict) -> None:
    assert first.keys() == second.keys() and first
    for name in first:
        assert first[name].dtype == second[name].dtype, name
        assert first[name].tobytes() == second[name].tobytes(), name  # bit for bit
