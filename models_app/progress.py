"""The one place that records job progress.

The database row is the source of truth: pages render from it, and it is what a page reload
shows. Byte-level progress arrives many times a second, so writes are throttled to about four
a second per record; phase changes and final states are always written at once.
"""
from __future__ import annotations

import time
from typing import Any

from django.utils import timezone

from .models import Extraction, LanguageModel

MIN_INTERVAL = 0.25
_last_write: dict[tuple[str, int], float] = {}


def _write(pk: int, fields: dict[str, Any]) -> None:
    fields["updated_at"] = timezone.now()
    LanguageModel.objects.filter(pk=pk).update(**fields)
    _last_write[("model", pk)] = time.monotonic()


def phase(pk: int, status: str, detail: str = "", **fields: Any) -> None:
    """Enter a new phase: persisted immediately, and appended to the record's phase log."""
    record = LanguageModel.objects.only("phase_log").get(pk=pk)
    log = list(record.phase_log or [])
    log.append({"status": status, "at": timezone.now().isoformat(), "detail": detail})
    _write(pk, {"status": status, "phase_detail": detail, "phase_log": log, **fields})


def update(pk: int, force: bool = False, **fields: Any) -> bool:
    """Progress within a phase; dropped when the last write was under MIN_INTERVAL ago."""
    if not force and time.monotonic() - _last_write.get(("model", pk), 0.0) < MIN_INTERVAL:
        return False
    _write(pk, fields)
    return True


def finish(pk: int, status: str, error_message: str = "", **fields: Any) -> None:
    phase(pk, status, detail=error_message[:255] if error_message else "",
          error_message=error_message, completed_at=timezone.now(), speed_bps=0.0,
          eta_seconds=None, **fields)
    _last_write.pop(("model", pk), None)


def download_fields(done: int, total: int, speed: float, eta: float | None, file: str) -> dict:
    percent = 100.0 * done / total if total else 0.0
    return {"bytes_downloaded": done, "bytes_total": total, "speed_bps": speed,
            "eta_seconds": eta, "progress": round(min(percent, 100.0), 2),
            "phase_detail": f"Downloading {file}"[:255] if file else "Downloading"}


def is_cancel_requested(pk: int) -> bool:
    return LanguageModel.objects.filter(pk=pk, cancel_requested=True).exists()



def extraction(pk: int, force: bool = False, **fields: Any) -> bool:
    """An extraction's status or progress; progress is throttled like a download's."""
    key = ("extraction", pk)
    if not force and time.monotonic() - _last_write.get(key, 0.0) < MIN_INTERVAL:
        return False
    Extraction.objects.filter(pk=pk).update(**fields)
    _last_write[key] = time.monotonic()
    return True
