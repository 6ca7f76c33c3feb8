"""Write templates to a JSON file in the import/export format (version 1.0)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ...import_export import export_bytes
from ...models import ExtractionTemplate


def parse_ids(text: str) -> list[int]:
    try:
        ids = [int(piece) for piece in text.split(",") if piece.strip()]
    except ValueError:
        raise CommandError(
            f"--ids takes template ids separated by commas, like 1,2,3; got {text!r}."
        ) from None
    if not ids:
        raise CommandError("--ids names no template.")
    return ids


class Command(BaseCommand):
    help = "Export extraction templates as JSON (all of them, or those named by --ids)."
    # It only reads records: the system checks would import every URL and build the API's
    # schemas first, a third of its start-up. `manage.py check` and run_studio still run them.
    requires_system_checks = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help='Where to write the JSON; "-" for standard output')
        parser.add_argument("--ids", help="Template ids separated by commas, e.g. 1,2,3")

    def handle(self, *args, file: str, ids: str | None = None, **options) -> None:
        queryset = ExtractionTemplate.objects.order_by("pk")
        if ids is not None:
            wanted = parse_ids(ids)
            queryset = queryset.filter(pk__in=wanted)
            missing = sorted(set(wanted) - set(queryset.values_list("pk", flat=True)))
            if missing:
                raise CommandError(f"No template with id {', '.join(map(str, missing))}.")
        data = export_bytes(queryset)
        count = queryset.count()
        if file == "-":
            # Only the JSON goes to stdout, so the output can be piped into a file or another tool.
            self.stdout.write(data.decode(), ending="\n")
            self.stderr.write(f"Exported {count} template{'s' if count != 1 else ''}.")
            return
        try:
            Path(file).write_bytes(data)
        except OSError as exc:
            raise CommandError(f"Could not write {file}: {exc.strerror}.") from None
        self.stdout.write(f"Exported {count} template{'s' if count != 1 else ''} to {file}.")
