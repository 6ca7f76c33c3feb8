"""A one-line terminal progress bar drawn from a job's record (in the terminal's own colour, not\nthe red of error output), and running a job under it."""
from __future__ import annotations

import signal
import sys
import threading
from typing import Callable

from django.core.management.base import OutputWrapper

from models_app.formatting import bytesize, duration, speed


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


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt()


def run_job_with_bar(command, job: Callable[[int], object], record, draw: str) -> None:
    """Run `job(record.pk)` in a thread while redrawing the bar from the record. Ctrl-C or
    SIGTERM asks the job to cancel (as the page's Cancel button does) and waits until it has
    stopped and removed its files, so the record always ends cancelled, never stuck."""
    bar = ProgressBar(OutputWrapper(sys.stderr) if sys.stderr.isatty() else None)
    # An Event, not Thread.join: a KeyboardInterrupt inside join() can leave is_alive() False
    # while the thread still runs (CPython 3.11).
    done = threading.Event()
    worker = threading.Thread(target=_in_own_connection, args=(job, record.pk, done), daemon=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    stopping = False
    worker.start()
    try:
        while not done.is_set():
            try:
                done.wait(0.5)
                getattr(bar, draw)(type(record).objects.get(pk=record.pk))
            except KeyboardInterrupt:
                if not stopping:  # a second Ctrl-C keeps waiting: leaving now would strand the job
                    stopping = True
                    bar.close()
                    command.stderr.write("Stopping: cancelling the job and removing its files...")
                    type(record).objects.get(pk=record.pk).request_cancel()
    finally:
        signal.signal(signal.SIGTERM, previous)
    bar.close()
    record.refresh_from_db()


def _in_own_connection(job: Callable[[int], object], pk: int, done: threading.Event) -> None:
    from django.db import connection

    try:
        job(pk)
    finally:
        connection.close()
        done.set()
