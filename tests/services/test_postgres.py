"""The scale-out database: migrations on a real PostgreSQL, with the GIN index on the config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

# Slow: manage.py processes on a scratch PostgreSQL database.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_it_migrates_postgres_with_a_gin_index_on_the_config(scratch_database, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": scratch_database,
        "MISTUDIO_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "mistudio_site.settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    with psycopg.connect(scratch_database) as conn:
        indexdef = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'models_app_languagemodel_config_gin'"
        ).fetchone()[0]
        column_type = conn.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = "
            "'models_app_languagemodel' AND column_name = 'architecture_config'"
        ).fetchone()[0]
    assert "USING gin (architecture_config jsonb_path_ops)" in indexdef
    assert column_type == "jsonb"


HOOK_FILTER = """
import django
django.setup()
from django.contrib.auth import get_user_model
from models_app.forms.history import ExtractionFilterForm
from models_app.models import Dataset, Extraction, LanguageModel

user = get_user_model().objects.create_user("r", password="pw-r-12345")
model = LanguageModel.objects.create(name="m", repo_id="tiny/m", status="ready")
dataset = Dataset.objects.create(name="d", source="upload", file_format="txt", status="ready")
for hooks in (["residual"], ["residual", "mlp"], ["attention"], ["mlp_extra"]):
    Extraction.objects.create(model=model, dataset=dataset, layers=[0], hooks=hooks, status="completed")
form = ExtractionFilterForm({"hook": "mlp"}, user=user)
assert form.is_valid(), form.errors
print(sorted(tuple(x.hooks) for x in form.apply(Extraction.objects.all())))
"""


def test_the_hook_filter_matches_whole_hook_names_on_postgres(scratch_database, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": scratch_database,
        "MISTUDIO_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "mistudio_site.settings",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    result = subprocess.run(
        [sys.executable, "-c", HOOK_FILTER], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[('residual', 'mlp')]"


TEMPLATE_IMPORT = """
import django, json
django.setup()
from templates_app import import_export
from templates_app.models import ExtractionTemplate

ExtractionTemplate.objects.create(name="probe 1", batch_size=1, extra_metadata={"old": True})
entries = [{"name": f"probe {i}", "layer_indices": [0, 2], "hook_types": ["mlp"], "batch_size": 4,
            "extra_metadata": {"i": i, "nested": [1, {"a": None}]}, "created_at": "2024-01-02T03:04:05Z"}
           for i in range(3)]
print(import_export.import_payload({"version": "1.0", "templates": entries}, "overwrite"))
print(import_export.import_payload({"version": "1.0", "templates": entries}, "rename"))
for t in ExtractionTemplate.objects.order_by("pk"):
    print(t.name, t.batch_size, json.dumps(t.extra_metadata, sort_keys=True), t.created_at.year == 2024,
          t.layer_indices)
"""


def test_a_template_import_writes_its_rows_on_postgres(scratch_database, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": scratch_database,
        "MISTUDIO_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "mistudio_site.settings",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    result = subprocess.run(
        [sys.executable, "-c", TEMPLATE_IMPORT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[:2] == ["2 created, 1 updated, 0 skipped", "3 created, 0 updated, 0 skipped"]
    assert lines[2] == 'probe 1 4 {"i": 1, "nested": [1, {"a": null}]} False [0, 2]'  # overwritten in place
    assert lines[3] == 'probe 0 4 {"i": 0, "nested": [1, {"a": null}]} True [0, 2]'  # the file's date
    assert [line.split(" 4 ")[0] for line in lines[5:]] == ["probe 0 (2)", "probe 1 (2)", "probe 2 (2)"]
