"""An unfinished extraction's checkpoint: where it stopped and the running state of its statistics
and top-K, so that a Retry continues from there instead of starting over (ml/extraction.py).

A checkpoint is taken at a batch boundary, by the writer thread once the rows of every batch
before it are written and synced (os.fsync): whatever happens next (a cancel, an error, a kill
-9 of the worker, the machine losing power) the `.partial` arrays hold at least what the
checkpoint counts. Rows written after it are written again, identically, on resume.

Two files, each replaced atomically: `checkpoint.pt` (the state, read only on resume) and
`checkpoint.json` (how far it got, small, what pages read). A checkpoint is used only when its
`key` (the settings, the model and dataset it ran on, the engine's layout) equals the new run's:
anything else starts over.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE = "checkpoint.pt"
SUMMARY = "checkpoint.json"
LAYOUT = 1  # bump when the state's meaning changes: older checkpoints then start over
_WRITING = ".writing"


@dataclass
class Checkpoint:
    key: dict[str, Any]
    window_start: int  # the window to tokenize first on resume
    position: int  # batches of that window's length order already done
    samples_done: int
    real_tokens: int
    bytes_written: int
    batch_size: int  # samples per forward pass (halved on out-of-memory)
    oom_events: list[dict[str, int]]
    resumes: list[dict[str, Any]]  # earlier resumes: {"from_sample", "at"}
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> stats / topk state

    def summary(self, samples_total: int) -> dict[str, Any]:
        return {"samples_done": self.samples_done, "samples_total": samples_total}


def save(folder: Path, checkpoint: Checkpoint, samples_total: int) -> None:
    """Write both files atomically and durably (called after the arrays are synced)."""
    import torch  # here, not at the top: pages read `progress` without loading torch

    state = {"layout": LAYOUT, **checkpoint.__dict__}
    _replace(folder / STATE, lambda handle: torch.save(state, handle))
    summary = json.dumps(checkpoint.summary(samples_total)).encode()
    _replace(folder / SUMMARY, lambda handle: handle.write(summary))
    _sync_folder(folder)


def load(folder: Path, key: dict[str, Any]) -> Checkpoint | None:
    """The checkpoint in `folder` if it was made by a run with this `key`, else None."""
    import torch

    try:
        state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
    except Exception:  # none, cut short, or not ours: the run starts over
        return None
    if not isinstance(state, dict) or state.pop("layout", None) != LAYOUT:
        return None
    try:
        checkpoint = Checkpoint(**state)
    except TypeError:
        return None
    return checkpoint if checkpoint.key == key else None


def progress(folder: Path) -> dict[str, int] | None:
    """{"samples_done", "samples_total"} of the checkpoint in `folder`, or None."""
    try:
        summary = json.loads((folder / SUMMARY).read_text())
        return {"samples_done": int(summary["samples_done"]), "samples_total": int(summary["samples_total"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove(folder: Path) -> None:
    for name in (STATE, SUMMARY, STATE + _WRITING, SUMMARY + _WRITING):
        (folder / name).unlink(missing_ok=True)


def _replace(path: Path, write) -> None:
    writing = path.with_name(path.name + _WRITING)
    with open(writing, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(writing, path)


def _sync_folder(folder: Path) -> None:
    """The renames themselves survive a power loss once the folder is synced."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
