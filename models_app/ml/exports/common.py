"""What every export shares: its errors, its progress (with the cancel check), the `.partial`
folder it writes into, and its manifest."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import Cancelled, UserError

# As outputs.PARTIAL; not imported from there, which would load torch for nothing.
PARTIAL = ".partial"
MANIFEST = "manifest.json"
BATCH_BYTES = 32 * 2**20  # activations read and written at a time (a writer may copy them ~3 times)


class ExportError(UserError):
    """An extraction that cannot be exported as asked, explained for the user; `field`: the
    option it is about (a form shows it there), None for the extraction as a whole."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class ExportCancelled(Cancelled):
    pass


@dataclass
class ExportProgress:
    tokens_done: int
    tokens_total: int
    bytes_written: int
    tokens_per_second: float
    eta_seconds: float | None


class Meter:
    """One cancel check before each batch and one progress report after it."""

    def __init__(
        self, total: int, on_progress: Callable[[ExportProgress], None], should_cancel: Callable[[], bool]
    ):
        self.total, self.on_progress, self.should_cancel = total, on_progress, should_cancel
        self.done = self.bytes_written = 0
        self.started = time.perf_counter()

    def check(self) -> None:
        if self.should_cancel():
            raise ExportCancelled()

    def add(self, tokens: int, written: int) -> None:
        self.done += tokens
        self.bytes_written += written
        elapsed = time.perf_counter() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        self.on_progress(
            ExportProgress(
                tokens_done=self.done,
                tokens_total=self.total,
                bytes_written=self.bytes_written,
                tokens_per_second=rate,
                eta_seconds=(self.total - self.done) / rate if rate > 0 else None,
            )
        )


def refuse_existing(out: Path) -> None:
    """Said first, before an extraction's files are read for an export that cannot be written."""
    if Path(out).exists():
        raise ExportError(f"{out} already exists: remove it or choose another folder.")


@contextmanager
def writing(out: Path) -> Iterator[Path]:
    """A `.partial` folder beside `out`, renamed to `out` when the block completes and removed
    when it raises (a cancel included): an export is there whole or not at all."""
    out = Path(out)
    refuse_existing(out)
    partial = out.with_name(out.name + PARTIAL)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        partial.mkdir()
    except FileExistsError:
        # Another export may be writing it right now, and only it knows: it is left alone.
        raise ExportError(
            f"{partial} exists: another export is writing it, or one was killed. Remove it first."
        ) from None
    try:
        yield partial
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))


def now() -> str:
    """When an export was made, for its manifest (UTC, ISO 8601)."""
    return datetime.now(UTC).isoformat(timespec="seconds")
