"""The scale-out shape for real: PostgreSQL for the rows, Redis as the Django-Q2 broker, and a
separate qcluster process doing the download queued by another process."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.workers import stop

ROOT = Path(__file__).resolve().parents[2]

QUEUE_A_DOWNLOAD = """
from django.conf import settings
from models_app.services import downloads as services
from models_app.ml import hub
pre = hub.preflight("tiny/gpt_neox", endpoint=settings.HF_ENDPOINT)
print(services.create_download(pre, "q4", token=None).pk)
"""


def manage(env, *args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=300, **kwargs)


def test_a_worker_on_redis_and_postgres_runs_a_download_queued_elsewhere(
        scratch_database, scratch_redis, hub, tmp_path):
    env = {**os.environ, "DATABASE_URL": scratch_database, "REDIS_URL": scratch_redis,
           "MISTUDIO_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "mistudio_site.settings",
           "HF_ENDPOINT": hub.endpoint}
    migrated = manage(env, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    queued = manage(env, "shell", "-c", QUEUE_A_DOWNLOAD)
    assert queued.returncode == 0, queued.stderr
    pk = int(queued.stdout.strip().splitlines()[-1])

    worker = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        status, error = _wait_for_final_status(scratch_database, pk)
    finally:
        stop(worker)
    assert status == "ready", error
    with psycopg.connect(scratch_database) as conn:
        successes = conn.execute("SELECT count(*) FROM django_q_task WHERE success AND "
                                 "func = 'models_app.jobs.download.run_download'").fetchone()[0]
    assert successes == 1
    assert (tmp_path / "models" / "quantized" / f"{pk}_q4" / "model.safetensors").exists()


def _wait_for_final_status(database: str, pk: int, timeout: float = 120) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    with psycopg.connect(database, autocommit=True) as conn:
        while time.monotonic() < deadline:
            status, error = conn.execute("SELECT status, error_message FROM models_app_languagemodel "
                                         "WHERE id = %s", (pk,)).fetchone()
            if status in ("ready", "error", "cancelled"):
                return status, error
            time.sleep(0.5)
    pytest.fail(f"the worker did not finish model {pk}; last status {status}")
