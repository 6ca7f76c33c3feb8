from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from models_app.models import LanguageModel


class Command(BaseCommand):
    help = "Everything the studio knows about one model, as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("model_id", type=int)

    def handle(self, *args, **options) -> None:
        record = LanguageModel.objects.filter(pk=options["model_id"]).first()
        if record is None:
            raise CommandError(f"No model with id {options['model_id']}.")
        fields = [f.name for f in record._meta.fields if f.name != "encrypted_token"]
        data = {name: getattr(record, name) for name in fields}
        self.stdout.write(json.dumps(data, indent=2, default=str))
