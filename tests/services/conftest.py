"""Scratch PostgreSQL and Redis databases, and a deployment in the scale-out shape on them
(tests/services/deployment.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.services.deployment import ScaleOut
from tests.workers import stop

SERVER = os.environ.get("MISTUDIO_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _redis_for_this_process(url: str) -> str:
    """`url`'s Redis database, moved on by the pytest-xdist worker's number (gw0: the same, gw1:
    the next, ...): each worker's deployments queue, flush and count their keys apart, so one
    worker's qclusters never take another's tasks."""
    from urllib.parse import urlsplit

    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0) + int(worker.removeprefix("gw"))
    if database > 15:  # Redis's default `databases 16`
        raise RuntimeError(f"no Redis database {database} for {worker} (from {url}): use fewer workers")
    return parts._replace(path=f"/{database}").geturl()


REDIS = _redis_for_this_process(os.environ.get("MISTUDIO_TEST_REDIS", "redis://127.0.0.1:6379/11"))


@pytest.fixture
def scratch_database():
    """A fresh PostgreSQL database, dropped afterwards."""
    name = f"mistudio_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield SERVER.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def scratch_redis():
    """A Redis database emptied before and after."""
    import redis

    client = redis.Redis.from_url(REDIS)
    client.flushdb()
    yield REDIS
    client.flushdb()


@pytest.fixture
def scale_out(scratch_database, scratch_redis, hub, tmp_path) -> Iterator[ScaleOut]:
    data_dir, logs = tmp_path / "shared-data", tmp_path / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mistudio_site.settings",
        "DATABASE_URL": scratch_database,
        "REDIS_URL": scratch_redis,
        "MISTUDIO_DATA_DIR": str(data_dir),
        "HF_ENDPOINT": hub.endpoint,
        "MISTUDIO_DOWNLOAD_WORKERS": "1",
    }
    # Nothing from the shell: every process reads the key file in the shared data directory, and
    # is the downloads cluster unless a test says otherwise.
    for name in ("SECRET_KEY", "Q_CLUSTER_NAME", "ALLOWED_HOSTS"):
        env.pop(name, None)
    deployment = ScaleOut(scratch_database, scratch_redis, data_dir, logs, env)
    migrated = deployment.manage("migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    yield deployment
    stop(*deployment.workers)


@pytest.fixture
def web_process_database(scale_out, django_db_blocker):
    """Point this process's default database at the deployment's PostgreSQL for one test, as a
    web server of the deployment would be; the test database comes back afterwards."""
    import dj_database_url
    from django.db import connections

    def reopen(settings_dict: dict) -> None:
        connections.close_all()
        connections.settings["default"] = settings_dict
        try:
            del connections["default"]  # the next use opens a connection from settings_dict
        except AttributeError:
            pass

    original = connections.settings["default"]
    parsed = dj_database_url.parse(scale_out.database, conn_max_age=60)
    with django_db_blocker.unblock():
        reopen(connections.configure_settings({"default": parsed})["default"])
        try:
            yield scale_out.database
        finally:
            reopen(original)
