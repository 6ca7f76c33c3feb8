"""A one-line terminal progress bar drawn from a job's record."""
from __future__ import annotations

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
