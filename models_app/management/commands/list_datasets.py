from __future__ import annotations

from django.core.management.base import BaseCommand

from models_app.formatting import bytesize
from models_app.models import Dataset


class Command(BaseCommand):
    help = "One line per dataset, starting with its id."
    # It only reads records: the system checks would import every URL and build the API's
    # schemas first, a third of its start-up. `manage.py check` and run_studio still run them.
    requires_system_checks = []

    def handle(self, *args, **options) -> None:
        for d in Dataset.objects.order_by("pk"):
            self.stdout.write(
                f"{d.pk}\t{d.name}\t{d.source}:{d.source_detail}\t{d.num_samples} samples\t"
                f"{bytesize(d.size_bytes)}\t{d.status}"
            )
