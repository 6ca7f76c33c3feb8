"""Test settings: the real settings module with a throwaway data dir, a file-based SQLite
database (so a real qcluster subprocess can share it), synchronous Django-Q2 and the
in-memory channel layer."""

import os
import tempfile

# Each test process (the pytest process, or each pytest-xdist worker: PYTEST_XDIST_WORKER) makes
# its own data dir, and with it its own test database; a studio subprocess of a test (worker,
# web server, command) inherits both through the environment along with the owner's name. An
# xdist worker inherits the environment of the pytest process that started it, whose data dir
# is not its own: the owner's name tells them apart.
if not os.environ.get("MISTUDIO_DATA_DIR") or os.environ.get("MISTUDIO_TEST_DATA_OWNER") != os.environ.get(
    "PYTEST_XDIST_WORKER", "main"
):
    os.environ["MISTUDIO_TEST_DATA_OWNER"] = os.environ.get("PYTEST_XDIST_WORKER", "main")
    os.environ["MISTUDIO_DATA_DIR"] = tempfile.mkdtemp(
        prefix=f"mistudio-test-{os.environ['MISTUDIO_TEST_DATA_OWNER']}-"
    )
    os.environ.pop("MISTUDIO_TEST_DB", None)
os.environ.pop("REDIS_URL", None)
os.environ.pop("DATABASE_URL", None)

from mistudio_site.settings import *  # noqa: F403
from mistudio_site.settings import DATA_DIR, Q_CLUSTER

TEST_DB = os.environ.setdefault("MISTUDIO_TEST_DB", str(DATA_DIR / "test-db.sqlite3"))
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": TEST_DB,
        "TEST": {"NAME": TEST_DB},
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        },
    }
}
Q_CLUSTER = {**Q_CLUSTER, "sync": os.environ.get("MISTUDIO_Q_SYNC", "1") == "1"}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False
# Lost workers are noticed within seconds here, not half a minute (the bound is a setting).
JOB_HEARTBEAT_SECONDS = int(os.environ.get("MISTUDIO_HEARTBEAT_SECONDS", "1"))
JOB_STALE_SECONDS = int(os.environ.get("MISTUDIO_STALE_SECONDS", "4"))
EXTRACTION_CHECKPOINT_SECONDS = int(os.environ.get("MISTUDIO_CHECKPOINT_SECONDS", "1"))
