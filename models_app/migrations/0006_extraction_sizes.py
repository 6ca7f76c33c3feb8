"""Completed extractions from before size_bytes existed get their size on disk, so the history
shows it and sorts by it."""

from pathlib import Path

from django.conf import settings
from django.db import migrations


def measure(apps, schema_editor):
    from models_app.ml.storage import disk_usage

    Extraction = apps.get_model("models_app", "Extraction")
    for record in Extraction.objects.filter(status="completed", size_bytes=0).only("pk"):
        size = disk_usage(Path(settings.ACTIVATIONS_DIR) / str(record.pk))
        if size:
            Extraction.objects.filter(pk=record.pk).update(size_bytes=size)


class Migration(migrations.Migration):
    dependencies = [("models_app", "0005_extraction_history")]
    operations = [migrations.RunPython(measure, migrations.RunPython.noop)]
