"""A one-line terminal progress bar drawn from a job's record, and running a job under it."""
from __future__ import annotations

import sys
import threading
from typing import Callable

from models_app.templatetags.studio import bytesize, duration, speed


class ProgressBar:
    WIDTH = 30

    def __init__(self, stream) -> None:
        self.stream = stream
        self.last = ""

    def show(self, record) -> None:
        filled = int(self.WIDTH * (record.progress or 0) / 100)
        line = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {record.progress:5.1f}% {record.status}"
        if record.status == "downloading":
            line += (f" {bytesize(record.bytes_downloaded)}/{bytesize(record.bytes_total)}"
                     f" {speed(record.speed_bps)} ETA {duration(record.eta_seconds)}")
        elif record.phase_detail:
            line += f" {record.phase_detail}"
        self._draw(line)

    def show_extraction(self, record) -> None:
        filled = int(self.WIDTH * (record.progress or 0) / 100)
        line = (f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {record.progress:5.1f}% {record.status}"
                f" {record.samples_done}/{record.samples_total} samples"
                f" {record.tokens_per_second:,.0f} tok/s ETA {duration(record.eta_seconds)}")
        self._draw(line)

    def _draw(self, line: str) -> None:
        if line != self.last and self.stream is not None:
            self.stream.write("\r" + line.ljust(len(self.last)), ending="")
            self.stream.flush()
        self.last = line

    def close(self) -> None:
        if self.stream is not None and self.last:
            self.stream.write("")


def run_job_with_bar(command, job: Callable[[int], object], record, draw: str,
                     cancel: Callable[[object], None]) -> None:
    """Run `job(record.pk)` in a thread while redrawing the bar from the record; Ctrl-C asks the
    job to cancel (as the page's Cancel button does) and waits for it to stop cleanly."""
    bar = ProgressBar(command.stderr if sys.stderr.isatty() else None)
    worker = threading.Thread(target=job, args=(record.pk,))
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)
            getattr(bar, draw)(type(record).objects.get(pk=record.pk))
    except KeyboardInterrupt:
        cancel(record)
        worker.join()
    bar.close()
    record.refresh_from_db()
