from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from ._lookup import add_model_id_argument, get_model


class Command(BaseCommand):
    help = "Everything the studio knows about one model, as JSON (never the access token)."
    # It only reads records: the system checks would import every URL and build the API's
    # schemas first, a third of its start-up. `manage.py check` and run_studio still run them.
    requires_system_checks = []

    def add_arguments(self, parser) -> None:
        add_model_id_argument(parser)

    def handle(self, *args, **options) -> None:
        record = get_model(options["model_id"])
        fields = [f.name for f in record._meta.fields if f.name != "encrypted_token"]
        data = {name: getattr(record, name) for name in fields}
        self.stdout.write(json.dumps(data, indent=2, default=str))
