"""The one place where jobs record their progress, and where open pages hear of it.

The database row is the source of truth: pages render from it, and it is what a page reload
shows. Progress inside a phase arrives many times a second, so those writes are throttled to
about four a second per record; phase changes and final states are always written at once.
Every write stamps `updated_at` and is published (see `publish`), so a live page shows what a
reload would.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.utils import timezone

from .models import (
    STALL_SECONDS,
    ActivationExport,
    Comparison,
    Dataset,
    Extraction,
    FormatCheck,
    LanguageModel,
    ModelStatus,
    overall_progress,
)

# The class of a job's record. Each kind declares its own `status` field (with its own choices) and
# the abstract JobRecord declares none, so queries on the status are typed against the kinds.
JobClass = (
    type[LanguageModel]
    | type[Dataset]
    | type[Extraction]
    | type[ActivationExport]
    | type[Comparison]
    | type[FormatCheck]
)

MIN_INTERVAL = 0.25
LIVE_GROUP = "studio-live"

log = logging.getLogger(__name__)


class Tracker:
    """Phase / update / finish for one job record, of any kind."""

    def __init__(self, record_cls: JobClass, pk: int) -> None:
        self.record_cls, self.pk = record_cls, pk
        self._last_write = 0.0

    def _write(self, fields: dict[str, Any]) -> bool:
        """Write while the job still holds the record: one that was deleted, or ended by someone
        else (a cancel of a queued job, a lost-worker check), is left as it is."""
        now = timezone.now()
        written = self.record_cls.objects.filter(pk=self.pk, status__in=self.record_cls.ACTIVE).update(
            updated_at=now, heartbeat_at=now, **fields
        )
        self._last_write = time.monotonic()
        if written:
            publish(self.record_cls.KIND, self.pk, version=now.isoformat())
        return bool(written)

    def _logged(self, status: str, detail: str, fields: dict[str, Any]) -> dict[str, Any]:
        if issubclass(self.record_cls, LanguageModel):  # the kind with a phase log
            record = self.record_cls.objects.only("phase_log").get(pk=self.pk)
            entry = {"status": status, "at": timezone.now().isoformat(), "detail": detail}
            fields = {"phase_detail": detail, **fields, "phase_log": [*(record.phase_log or []), entry]}
        return {"status": status, **fields}

    def phase(self, status: str, detail: str = "", **fields: Any) -> bool:
        """Enter a new phase: written at once, and appended to the phase log where there is one."""
        return self._write(self._logged(status, detail, fields))

    def update(self, force: bool = False, **fields: Any) -> bool:
        """Progress within a phase; dropped when the last write was under MIN_INTERVAL ago."""
        if not force and time.monotonic() - self._last_write < MIN_INTERVAL:
            return False
        return self._write(fields)

    def finish(self, status: str, error_message: str = "", **fields: Any) -> bool:
        """The final state; False when the job no longer held the record."""
        return self._write(
            self._logged(
                status,
                error_message[:255],
                {"error_message": error_message, "completed_at": timezone.now(), **fields},
            )
        )


def download_fields(
    done: int, total: int, speed: float, eta: float | None, file: str, idle_seconds: float = 0.0
) -> dict:
    fraction = done / total if total else 0.0
    stalled = idle_seconds >= STALL_SECONDS and done < total
    return {
        "bytes_downloaded": done,
        "bytes_total": total,
        "speed_bps": speed,
        "eta_seconds": eta,
        "progress": overall_progress(ModelStatus.DOWNLOADING, fraction),
        "phase_detail": f"Downloading {file}"[:255] if file else "Downloading",
        "stalled_since": timezone.now() - timedelta(seconds=idle_seconds) if stalled else None,
    }


def publish(kind: str, pk: int, deleted: bool = False, version: str | None = None) -> None:
    """Tell open pages that a record changed. Through Redis this reaches every web process;
    with the in-memory layer only this process's pages hear it, and the web process's watcher
    (models_app.consumers) picks up rows that worker processes changed."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "record.changed", "kind": kind, "pk": pk, "deleted": deleted, "version": version}
    try:
        async_to_sync(layer.group_send)(LIVE_GROUP, message)
    except Exception as exc:  # a live update is a courtesy: the row is already written
        log.warning("could not publish a live update for %s %s: %s", kind, pk, exc)
