"""The studio's files are its user's alone: a data directory made by the settings is 0700, and
the SQLite database a migration writes (with its -wal and -shm) is 0600, in a fresh data
directory and in one made before they were private."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workers import ROOT

# Slow: settings and migrate in fresh processes.
pytestmark = pytest.mark.slow

MIGRATE_AND_REPORT = """
import json, os, stat, sys
os.umask(0o022)  # a usual login shell's, whatever this test process has
import django
django.setup()
from django.conf import settings
from django.core.management import call_command
from django.db import connection
call_command("migrate", verbosity=0)
with connection.cursor() as cursor:  # the connection stays open: WAL keeps its -wal and -shm
    cursor.execute("INSERT INTO django_session VALUES ('k', 'v', '2100-01-01')")
data = settings.DATA_DIR
paths = [data, data / "db.sqlite3", data / "db.sqlite3-wal", data / "db.sqlite3-shm", data / "secret_key"]
print(json.dumps({p.name: oct(stat.S_IMODE(os.stat(p).st_mode)) for p in paths}))
"""


def migrate_in(data_dir: Path) -> dict[str, str]:
    """The studio's settings and `migrate` in a process of their own, as `make run` starts them."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(data_dir.parent),
        "MISTUDIO_DATA_DIR": str(data_dir),
        "DJANGO_SETTINGS_MODULE": "mistudio_site.settings",
    }
    done = subprocess.run(
        [sys.executable, "-c", MIGRATE_AND_REPORT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_it_makes_a_fresh_data_directory_and_database_private(tmp_path):
    os.chmod(tmp_path, 0o755)
    modes = migrate_in(tmp_path / "data")
    assert modes == {
        "data": "0o700",
        "db.sqlite3": "0o600",
        "db.sqlite3-wal": "0o600",
        "db.sqlite3-shm": "0o600",
        "secret_key": "0o600",
    }


def test_it_makes_a_data_directory_from_before_private(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    database = sqlite3.connect(data / "db.sqlite3")
    database.execute("PRAGMA journal_mode=WAL")
    database.execute("CREATE TABLE earlier (x)")
    for name in ("db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm"):
        os.chmod(data / name, 0o644)
    database.close()
    assert stat.S_IMODE((data / "db.sqlite3").stat().st_mode) == 0o644
    modes = migrate_in(data)
    assert modes == {
        "data": "0o700",
        "db.sqlite3": "0o600",
        "db.sqlite3-wal": "0o600",
        "db.sqlite3-shm": "0o600",
        "secret_key": "0o600",
    }
