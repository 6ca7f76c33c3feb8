"""A job queue that cannot take a job, or that lost one: a real Redis that is unreachable, and a
real Redis emptied as a restart without saving empties it."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import psycopg
import pytest
import redis

from tests.services.deployment import WEB_SESSION

# Slow: a scale-out deployment: PostgreSQL, Redis and manage.py processes.
pytestmark = pytest.mark.slow

QUEUE_WITH_REDIS_DOWN = """
import json
from models_app.models import ApiToken

answers = {}
page = browser.post(reverse("models_app:download"), {"repo_id": "tiny/llama", "revision": "main",
                                                     "quantization": "fp16"}, HTTP_HX_REQUEST="true")
answers["page"] = [page.status_code, page.headers.get("HX-Reswap"), page.content.decode()]
_record, token = ApiToken.issue(user, "script")
api = browser.post("/api/v1/models", {"repo_id": "tiny/llama", "revision": "main", "quantization": "q8"},
                   content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
answers["api"] = [api.status_code, api.json()]
answers["rows"] = list(
    LanguageModel.objects.order_by("pk").values_list("quantization", "status", "error_message")
)
print(json.dumps(answers))
"""

MESSAGE = "The job queue cannot be reached, so the job was not started: try again in a moment."


def test_it_fails_a_job_the_queue_cannot_take_and_says_where_the_user_looks(scale_out):
    done = scale_out.manage(
        "shell",
        "-c",
        WEB_SESSION + QUEUE_WITH_REDIS_DOWN,
        ALLOWED_HOSTS="testserver",
        REDIS_URL="redis://127.0.0.1:1/0",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    status, reswap, html = answers["page"]
    assert (
        status == 200 and reswap == "none" and MESSAGE in html and 'hx-swap-oob="beforeend:#toasts"' in html
    )
    assert answers["api"] == [503, {"detail": MESSAGE, "errors": []}]
    assert answers["rows"] == [["fp16", "error", MESSAGE], ["q8", "error", MESSAGE]]  # none left queued


QUEUE_DOWNLOAD = """
post("download", {"repo_id": "tiny/llama", "revision": "main", "quantization": "fp32"})
print(LanguageModel.objects.get().pk)
"""

CHECK = "from models_app.jobs.lost import check_lost_jobs; check_lost_jobs()"


def test_it_queues_again_a_job_whose_task_a_restarted_redis_lost(scale_out):
    pk = int(scale_out.web(QUEUE_DOWNLOAD))
    queue = redis.Redis.from_url(scale_out.redis)
    assert queue.llen("django_q:downloads:q") == 1
    queue.flushdb()  # a Redis restarted without saving holds nothing
    with psycopg.connect(scale_out.database, autocommit=True) as conn:  # queued a while ago
        conn.execute(
            "UPDATE models_app_languagemodel SET updated_at = updated_at - %s WHERE id = %s",
            (timedelta(minutes=5), pk),
        )
    checked = scale_out.manage("shell", "-c", CHECK)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert queue.llen("django_q:downloads:q") == 1
    scale_out.manage("shell", "-c", CHECK)  # a task that is waiting is not queued twice
    assert queue.llen("django_q:downloads:q") == 1
    scale_out.start_worker()
    status, error = scale_out.wait_for_row("models_app_languagemodel", pk, {"ready", "error", "cancelled"})
    assert status == "ready", error


def test_it_leaves_a_job_queued_a_moment_ago_to_the_request_queueing_it(scale_out):
    pk = int(scale_out.web(QUEUE_DOWNLOAD))
    queue = redis.Redis.from_url(scale_out.redis)
    queue.flushdb()
    scale_out.manage("shell", "-c", CHECK)
    time.sleep(0.5)
    assert queue.llen("django_q:downloads:q") == 0, pk  # younger than the stale bound


REDOWNLOAD_WITH_REDIS_DOWN = """
import json
model = LanguageModel.objects.get()
page = browser.post(reverse("models_app:restart", args=[model.pk]), {"quantization": "fp16"},
                    HTTP_HX_REQUEST="true")
model.refresh_from_db()
print(json.dumps([page.status_code, MESSAGE in page.content.decode(), model.status, model.error_message]))
""".replace("MESSAGE", repr(MESSAGE))


def test_a_redownload_the_queue_cannot_take_keeps_the_models_files(scale_out):
    scale_out.start_worker()
    scale_out.wait_for_workers()
    pk = int(scale_out.web(QUEUE_DOWNLOAD))
    status, error = scale_out.wait_for_row("models_app_languagemodel", pk, {"ready", "error", "cancelled"})
    assert status == "ready", error
    snapshot = next((scale_out.data_dir / "models" / "hub" / "models--tiny--llama" / "snapshots").iterdir())
    files = sorted(path.name for path in snapshot.iterdir())
    done = scale_out.manage(
        "shell",
        "-c",
        WEB_SESSION + REDOWNLOAD_WITH_REDIS_DOWN,
        ALLOWED_HOSTS="testserver",
        REDIS_URL="redis://127.0.0.1:1/0",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [200, True, "error", MESSAGE]
    assert sorted(path.name for path in snapshot.iterdir()) == files and "model.safetensors" in files
