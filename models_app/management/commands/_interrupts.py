"""The signals that stop a job command: Ctrl-C (SIGINT), SIGTERM and a closed terminal (SIGHUP),
all handled alike (see `_progress.JobCommand`)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived. A KeyboardInterrupt, so the job runner (and any cleanup written for
    Ctrl-C) treats SIGTERM and SIGHUP exactly as it treats Ctrl-C."""

    def __init__(self, signum: int, message: str = "Cancelled: nothing was started.") -> None:
        super().__init__(message)
        self.signum, self.message = signum, message


class StopSignals:
    """Which stop signal arrived first. Outside `held()`, a signal raises Interrupted where the
    command is (before a job exists there is nothing to undo). Inside, it is only noted: raising
    in the middle of a database write or a cleanup could leave a record running and files behind,
    so whoever holds it asks the job to cancel and waits for it instead."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._holds = 0
        self._previous: dict[int, signal._HANDLER] = {}

    def __enter__(self) -> StopSignals:
        # Python lets only the main thread set handlers (call_command may run elsewhere).
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @contextmanager
    def held(self) -> Iterator[None]:
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1

    def _on_signal(self, signum: int, frame) -> None:
        if self.received is None:
            self.received = signum
        if not self._holds:
            raise Interrupted(signum)
