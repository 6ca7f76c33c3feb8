"""The scale-out database: migrations on a real PostgreSQL, with the GIN index on the config."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]


def test_it_migrates_postgres_with_a_gin_index_on_the_config(scratch_database, tmp_path):
    env = {**os.environ, "DATABASE_URL": scratch_database, "MISTUDIO_DATA_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "mistudio_site.settings"}
    result = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(scratch_database) as conn:
        indexdef = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = "
                                "'models_app_languagemodel_config_gin'").fetchone()[0]
        column_type = conn.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = "
            "'models_app_languagemodel' AND column_name = 'architecture_config'").fetchone()[0]
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
    env = {**os.environ, "DATABASE_URL": scratch_database, "MISTUDIO_DATA_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "mistudio_site.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=300)
    result = subprocess.run([sys.executable, "-c", HOOK_FILTER], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[('residual', 'mlp')]"
