"""Real Django-Q2 worker processes for tests, sharing the test database and storage."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_qcluster(settings, hf_endpoint: str, cluster: str | None = None) -> subprocess.Popen:
    """A qcluster on the ORM broker of the test database (`cluster`: an ALT_CLUSTERS name)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "MISTUDIO_Q_SYNC": "0",
           "MISTUDIO_TEST_DB": str(settings.DATABASES["default"]["NAME"]),
           "MISTUDIO_DATA_DIR": str(settings.MODELS_DIR.parent), "HF_ENDPOINT": hf_endpoint,
           "SECRET_KEY": settings.SECRET_KEY}  # tasks are signed with it
    if cluster:
        env["Q_CLUSTER_NAME"] = cluster
    return subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(*processes: subprocess.Popen) -> None:
    """Ask each process to stop, then kill what has not within 20 s."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
