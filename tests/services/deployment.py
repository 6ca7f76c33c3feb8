"""A deployment in the scale-out shape, driven from a test: the processes it runs (web-side
scripts, `manage.py` commands, qclusters on the Redis broker) and what they left in the database."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from tests.workers import ROOT

# The web side of a deployment, run as its own process: a signed-in researcher using the real
# views (forms, pre-flight, transaction.on_commit -> async_task onto the Redis queues).
WEB_SESSION = """
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import resolve, reverse

from models_app.models import Dataset, Extraction, LanguageModel

User = get_user_model()
user = User.objects.filter(username="researcher").first() or User.objects.create_user(
    "researcher", password="pw-researcher-1", is_staff=True)
browser = Client()
browser.force_login(user)


def post(view, data, **kwargs):
    response = browser.post(reverse(f"models_app:{view}", kwargs=kwargs), data)
    assert response.status_code == 302, (view, response.status_code, response.content.decode()[-3000:])
    return response
"""


@dataclass
class ScaleOut:
    """One deployment in the scale-out shape: a migrated PostgreSQL database, a Redis database,
    a shared data directory, and the environment every process of the deployment gets."""

    database: str
    redis: str
    data_dir: Path
    logs: Path
    env: dict[str, str]
    workers: list[subprocess.Popen] = field(default_factory=list)

    def manage(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **env},
            text=True,
            capture_output=True,
            timeout=300,
        )

    def web(self, script: str) -> str:
        """Run `script` after WEB_SESSION in a web-side process; its last line of output."""
        # The test client calls itself "testserver"; a real deployment lists its own names.
        done = self.manage("shell", "-c", WEB_SESSION + script, ALLOWED_HOSTS="testserver")
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def setting(self, name: str):
        """A setting as the deployment's processes see it (JSON-able values only)."""
        done = self.manage(
            "shell",
            "-c",
            f"import json; from django.conf import settings; print(json.dumps(settings.{name}))",
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    def start_worker(self, cluster: str | None = None) -> subprocess.Popen:
        """A `manage.py qcluster` process (Q_CLUSTER_NAME=`cluster`), logging to self.logs."""
        env = {**self.env, "Q_CLUSTER_NAME": cluster} if cluster else self.env
        with open(self.logs / f"worker-{len(self.workers)}-{cluster or 'downloads'}.log", "w") as log:
            worker = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.workers.append(worker)
        return worker

    def wait_for_workers(self, timeout: float = 60) -> None:
        """Until every started qcluster has registered with the broker (it then takes tasks)."""
        import redis

        client = redis.Redis.from_url(self.redis)
        deadline = time.monotonic() + timeout
        while len(client.keys("django_q:*:cluster:*")) < len(self.workers):
            dead = [w.args for w in self.workers if w.poll() is not None]
            if dead or time.monotonic() > deadline:
                pytest.fail(f"workers not up (exited: {dead})\n{self.worker_logs()}")
            time.sleep(0.25)

    def worker_logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-tail:]}" for p in sorted(self.logs.iterdir()))

    def wait_for_row(self, table: str, pk: int, final: set[str], timeout: float = 60) -> tuple[str, str]:
        """(status, error_message) of a job row once it reaches one of the `final` statuses."""
        deadline = time.monotonic() + timeout
        status = None
        with psycopg.connect(self.database, autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    f"SELECT status, error_message FROM {table} WHERE id = %s", (pk,)
                ).fetchone()
                assert row is not None, f"no row {pk} in {table}"
                status, error = row
                if status in final:
                    return status, error
                time.sleep(0.25)
        pytest.fail(f"{table} {pk} did not finish; last status {status}\n{self.worker_logs()}")
