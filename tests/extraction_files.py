"""Comparing two extractions' folders file by file: what a resumed run must equal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest


def assert_same_extraction_files(resumed: Path, uninterrupted: Path) -> None:
    """Arrays and top-K bit for bit, statistics equal (float rounding aside), the same file list."""
    names = sorted(p.name for p in uninterrupted.iterdir())
    assert sorted(p.name for p in resumed.iterdir()) == names
    for name in names:
        if name.endswith(".npy"):
            a, b = np.load(resumed / name), np.load(uninterrupted / name)
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes(), name
        elif name.endswith(".npz"):
            with np.load(resumed / name) as a, np.load(uninterrupted / name) as b:
                assert sorted(a.files) == sorted(b.files)
                for array in a.files:
                    assert a[array].tobytes() == b[array].tobytes(), (name, array)
    mine, theirs = (json.loads((f / "metadata.json").read_text()) for f in (resumed, uninterrupted))
    assert mine["real_tokens"] == theirs["real_tokens"] and mine["files"] == theirs["files"]
    for key, stats in theirs["statistics"].items():
        for name, value in stats.items():
            if name == "disk_size":  # blocks the filesystem allocated: not the file's content
                continue
            if isinstance(value, float):
                assert mine["statistics"][key][name] == pytest.approx(value, rel=1e-12), (key, name)
            else:
                assert mine["statistics"][key][name] == value, (key, name)


@contextmanager
def engine_cancelled_at(samples: int) -> Iterator[None]:
    """The engine's cancel check answering yes once `samples` are done: the cancel (or the kill)
    a second process would send at that point, where the job runs inside the test's own call."""
    from models_app.ml import extraction

    real_extract = extraction.extract

    def extract(*args, should_cancel, on_progress, **kwargs):
        done = [0]

        def progress(p):
            done[0] = p.samples_done
            on_progress(p)

        return real_extract(
            *args, should_cancel=lambda: done[0] >= samples or should_cancel(), on_progress=progress, **kwargs
        )

    extraction.extract = extract  # type: ignore[assignment]  # called the way the job calls it
    try:
        yield
    finally:
        extraction.extract = real_extract
