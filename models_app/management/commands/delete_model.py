from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from models_app import services
from models_app.models import LanguageModel
from models_app.templatetags.studio import bytesize


class Command(BaseCommand):
    help = "Delete a model, its quantized copy and the cache files no other model uses."

    def add_arguments(self, parser) -> None:
        parser.add_argument("model_id", type=int)

    def handle(self, *args, **options) -> None:
        record = LanguageModel.objects.filter(pk=options["model_id"]).first()
        if record is None:
            raise CommandError(f"No model with id {options['model_id']}.")
        name = record.name
        try:
            freed = services.delete(record)
        except services.StillRunning as exc:
            raise CommandError(str(exc))
        self.stdout.write(self.style.SUCCESS(f"Deleted {name}; freed {bytesize(freed)}."))
