"""GIN index on the config JSON, on PostgreSQL only (SQLite has no GIN; the JSON still works)."""

from django.db import migrations

INDEX = "models_app_languagemodel_config_gin"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON models_app_languagemodel "
            "USING gin (architecture_config jsonb_path_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("models_app", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
