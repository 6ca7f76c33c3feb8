"""A one-line terminal progress bar drawn from a job's record (in the terminal's own colour, not
the red of error output), running a job under it, and the commands that do: a stop signal
(Ctrl-C, SIGTERM, a closed terminal) cancels the job, its files are removed, the record ends
cancelled, and the command prints one line and exits with 128 + the signal's number (130 for
Ctrl-C), with no traceback."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

from django.core.management.base import BaseCommand, OutputWrapper
from django.db import connection

from models_app.formatting import bytesize, duration, speed

from ._interrupts import Interrupted, StopSignals


class ProgressBar:
    WIDTH = 30

    def __init__(self, stream) -> None:
        self.stream = stream
        self.last = ""

    def show(self, record) -> None:
        filled = int(self.WIDTH * (record.progress or 0) / 100)
        line = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {record.progress:5.1f}% {record.status}"
        if record.status == "downloading":
            line += (
                f" {bytesize(record.bytes_downloaded)}/{bytesize(record.bytes_total)}"
                f" {speed(record.speed_bps)} ETA {duration(record.eta_seconds)}"
            )
        elif record.phase_detail:
            line += f" {record.phase_detail}"
        self._draw(line)

    def show_extraction(self, record) -> None:
        filled = int(self.WIDTH * (record.progress or 0) / 100)
        line = (
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {record.progress:5.1f}% {record.status}"
            f" {record.samples_done}/{record.samples_total} samples"
            f" {record.tokens_per_second:,.0f} tok/s ETA {duration(record.eta_seconds)}"
        )
        self._draw(line)

    def show_export(self, record) -> None:
        filled = int(self.WIDTH * (record.progress or 0) / 100)
        self._draw(
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {record.progress:5.1f}% {record.status}"
            f" {record.tokens_done:,}/{record.tokens_total:,} tokens"
            f" {record.tokens_per_second:,.0f} tok/s ETA {duration(record.eta_seconds)}"
        )

    def show_comparison(self, record) -> None:
        filled = int(self.WIDTH * (record.progress or 0) / 100)
        self._draw(
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {record.progress:5.1f}% {record.status}"
            f" {record.tokens_done:,}/{record.tokens_total:,} tokens"
        )

    def show_format_check(self, record) -> None:
        filled = int(self.WIDTH * (record.progress or 0) / 100)
        self._draw(f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {record.progress:5.1f}% {record.status}")

    def show_dataset(self, record) -> None:
        self._draw(f"{record.status} {record.progress_detail}".rstrip())

    def say(self, line: str) -> None:
        """A line in place of the bar (what the command is doing instead)."""
        self._draw(line)

    def _draw(self, line: str) -> None:
        if line != self.last:
            self._write("\r" + line.ljust(len(self.last)), ending="")
        self.last = line

    def clear(self) -> None:
        """Erase the bar, so that the command's last line takes its place. Two more columns: a
        terminal echoes Ctrl-C as "^C" after it."""
        if self.last:
            self._write("\r" + " " * (len(self.last) + 2) + "\r", ending="")
        self.last = ""

    def close(self) -> None:
        if self.last:
            self._write("")

    def _write(self, text: str, ending: str = "\n") -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(text, ending=ending)
            self.stream.flush()
        except OSError:  # the terminal was closed: the job still has to be stopped and waited for
            self.stream = None


STOPPING = "Stopping: cancelling the job and removing its files..."


def run_job_with_bar(command, job: Callable[[int], object], record, draw: str) -> None:
    """Run `job(record.pk)` in a thread while redrawing the bar from the record. A stop signal
    (Ctrl-C, SIGTERM, a closed terminal) asks the job to cancel, as the page's Cancel button does,
    and waits until it has stopped and removed its files, so the record always ends cancelled,
    never stuck; then Interrupted is raised for the command to print one line and exit."""
    if connection.in_atomic_block:  # a caller's transaction (tests): only this connection sees the record
        job(record.pk)
        record.refresh_from_db()
        return
    bar = ProgressBar(OutputWrapper(sys.stderr) if sys.stderr.isatty() else None)
    stops = command.stops
    done = threading.Event()
    worker = threading.Thread(target=_in_own_connection, args=(job, record.pk, done), daemon=True)
    stopping = False
    with stops.held():
        worker.start()
        while not done.wait(0.25):
            if stops.received is None:
                getattr(bar, draw)(type(record).objects.get(pk=record.pk))
            elif not stopping:  # a second Ctrl-C keeps waiting: leaving now would strand the job
                stopping = True
                if stops.received != signal.SIGHUP:  # after a hang-up no terminal shows it
                    bar.say(STOPPING)
                type(record).objects.get(pk=record.pk).request_cancel()
    record.refresh_from_db()
    if stops.received is not None and record.status == type(record).CANCELLED:
        bar.clear()
        raise Interrupted(stops.received, command.cancelled_line(record))
    bar.close()


def _in_own_connection(job: Callable[[int], object], pk: int, done: threading.Event) -> None:
    try:
        job(pk)
    finally:
        connection.close()
        done.set()


class JobCommand(BaseCommand):
    """A command that runs a job in this process, under `run_job_with_bar`. `cancelled_message`
    is its one line when a stop signal has cancelled the job."""

    cancelled_message = "Cancelled: the job stopped and its files were removed."

    def cancelled_line(self, record) -> str:
        """The one line a stop signal's cancel ends with."""
        return self.cancelled_message

    def run_from_argv(self, argv: list[str]) -> None:
        from huggingface_hub.utils import disable_progress_bars

        # The command's own bar shows the job: the libraries' bars (transformers loading weights)
        # would cut it into pieces. transformers reads this setting when the job first imports it.
        disable_progress_bars()
        super().run_from_argv(argv)

    def execute(self, *args, **options):
        with StopSignals() as self.stops:
            try:
                return super().execute(*args, **options)
            except Interrupted as stopped:
                # From the first column, over a terminal's "^C"; plain, not the red of errors:
                # the user asked for this.
                line = ("\r" if self.stderr.isatty() else "") + stopped.message
                try:
                    self.stderr.write(line, style_func=str)
                except OSError:  # the terminal is gone (SIGHUP): the exit status still tells
                    pass
                raise SystemExit(128 + stopped.signum) from None
