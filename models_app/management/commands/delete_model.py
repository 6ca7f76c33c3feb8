from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from models_app.formatting import bytesize
from models_app.models import DeletionRefused

from ._lookup import add_model_id_argument, get_model


class Command(BaseCommand):
    help = "Delete a model, its quantized copies and the cache files no other model uses."

    def add_arguments(self, parser) -> None:
        add_model_id_argument(parser)

    def handle(self, *args, **options) -> None:
        record = get_model(options["model_id"])
        name = record.name
        try:
            freed = record.delete_with_files()
        except DeletionRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Deleted {name}; freed {bytesize(freed)}."))
