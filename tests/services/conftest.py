from __future__ import annotations

import os
import uuid

import psycopg
import pytest

SERVER = os.environ.get("MISTUDIO_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("MISTUDIO_TEST_REDIS", "redis://127.0.0.1:6379/11")


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
