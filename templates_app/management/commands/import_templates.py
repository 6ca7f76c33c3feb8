"""Import templates from a JSON file (all or nothing), with a policy for names that exist."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ...forms import MAX_IMPORT_BYTES, size_refusal
from ...import_export import POLICIES, ImportRefused, import_payload


class Command(BaseCommand):
    help = "Import extraction templates from a JSON file exported by the studio or the original tool."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help='The JSON file; "-" for standard input')
        parser.add_argument(
            "--on-duplicate",
            choices=POLICIES,
            default="skip",
            help="When a template with the same name exists: skip (default), overwrite, or "
            'rename to "name (2)"',
        )

    def _read(self, file: str) -> bytes:
        if file == "-":
            data = sys.stdin.buffer.read(MAX_IMPORT_BYTES + 1)  # one byte over is enough to refuse
            if len(data) > MAX_IMPORT_BYTES:
                raise CommandError(
                    f"Standard input holds more than {MAX_IMPORT_BYTES / 1e6:.0f} MB; "
                    "templates are imported from files of at most that size."
                )
            return data
        try:
            path = Path(file)
            if path.stat().st_size > MAX_IMPORT_BYTES:  # refused before it is read
                raise CommandError(size_refusal(path.stat().st_size))
            return path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Could not read {file}: {exc.strerror}.") from None

    def handle(self, *args, file: str, on_duplicate: str, **options) -> None:
        try:
            summary = import_payload(self._read(file), on_duplicate)
        except ImportRefused as exc:
            for problem in exc.problems:
                self.stderr.write(problem)
            count = len(exc.problems)
            raise CommandError(
                f"Refused {file}: {count} problem{'s' if count != 1 else ''}; nothing was imported."
            ) from None
        for line in summary.lines():
            self.stdout.write(line)
        self.stdout.write(f"Imported {file}: {summary}.")
