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
