from __future__ import annotations

from django.core.management.base import BaseCommand

from models_app.formatting import bytesize, params
from models_app.models import LanguageModel


class Command(BaseCommand):
    help = "One line per model, starting with its id."
    # It only reads records: the system checks would import every URL and build the API's
    # schemas first, a third of its start-up. `manage.py check` and run_studio still run them.
    requires_system_checks = []

    def handle(self, *args, **options) -> None:
        for m in LanguageModel.objects.order_by("pk"):
            fmt = m.get_quantization_display()
            if m.format_differs:
                fmt += f"->{m.get_effective_quantization_display()}"
            self.stdout.write(
                f"{m.pk}\t{m.name}\t{m.repo_id}@{m.revision}\t{fmt}\t{m.status}\t"
                f"{params(m.params_count)}\t{bytesize(m.disk_size_bytes)}"
            )
