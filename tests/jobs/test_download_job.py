"""The download job outside the request: live progress, cancellation, and a real qcluster."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from django.urls import reverse

from models_app.jobs import lost
from models_app.jobs.download import run_download
from models_app.ml import hub as hub_lib
from models_app.models import LanguageModel
from models_app.services import downloads as services
from tests.helpers import HTMX
from tests.workers import start_qcluster, stop

pytestmark = pytest.mark.django_db(transaction=True)


def queued_record(repo_id: str, fmt: str, monkeypatch, endpoint: str) -> LanguageModel:
    pre = hub_lib.preflight(repo_id, endpoint=endpoint)
    return services.create_download(pre, fmt, token=None, queue=False)


def watch(pk: int, until, timeout: float = 60.0) -> list[LanguageModel]:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = LanguageModel.objects.get(pk=pk)
        seen.append(record)
        if until(record):
            return seen
        time.sleep(0.2)
    raise AssertionError(f"timed out: {[(r.status, r.bytes_downloaded) for r in seen][:30]}")


@pytest.mark.slow
def test_it_shows_live_bytes_speed_and_eta_then_cancels(owner_client, hub, monkeypatch, settings):
    hub.repos["tiny/llama"].bytes_per_second = 400_000  # ~4 s for the 1.7 MB weights
    record = queued_record("tiny/llama", "fp16", monkeypatch, hub.endpoint)
    worker = threading.Thread(target=run_download, args=(record.pk,))
    worker.start()
    seen = watch(record.pk, lambda r: r.status == "downloading" and r.bytes_downloaded > 600_000)
    downloading = [r for r in seen if r.status == "downloading"]
    assert len({r.bytes_downloaded for r in downloading}) >= 3  # several updates within ~2 s
    last = downloading[-1]
    assert last.bytes_total > last.bytes_downloaded > 0 and last.speed_bps > 0 and last.eta_seconds > 0
    card = owner_client.get(reverse("models_app:card", args=[record.pk]), **HTMX).content.decode()
    assert "ETA" in card and "/s" in card and 'hx-trigger="offline-poll"' in card

    owner_client.post(reverse("models_app:cancel", args=[record.pk]), **HTMX)
    worker.join(30)
    record.refresh_from_db()
    assert record.status == "cancelled"
    assert not (settings.HF_CACHE_DIR / "models--tiny--llama").exists()


def test_cancelling_a_queued_job_never_starts_it(owner_client, hub, monkeypatch):
    record = queued_record("tiny/gpt2", "fp32", monkeypatch, hub.endpoint)
    owner_client.post(reverse("models_app:cancel", args=[record.pk]), **HTMX)
    assert run_download(record.pk) == "not claimed"
    record.refresh_from_db()
    assert record.status == "cancelled"


def test_a_job_is_claimed_only_once(hub, monkeypatch):
    record = queued_record("tiny/gpt2", "fp16", monkeypatch, hub.endpoint)
    assert run_download(record.pk) == "ready"
    assert run_download(record.pk) == "not claimed"


def test_an_unexpected_failure_ends_as_error_never_running(hub, monkeypatch):
    record = queued_record("tiny/gpt2", "fp16", monkeypatch, hub.endpoint)

    def explode(*args, **kwargs):
        raise RuntimeError("loader crashed")

    monkeypatch.setattr("models_app.ml.loading.load", explode)  # a fault injected on purpose
    assert run_download(record.pk) == "error"
    record.refresh_from_db()
    assert record.status == "error" and "loader crashed" in record.error_message


@pytest.mark.slow
def test_a_real_qcluster_runs_the_download(owner_client, hub, monkeypatch, settings):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)  # queue through the ORM broker like production
    cluster = start_qcluster(settings, hub.endpoint)
    try:
        response = owner_client.post(
            reverse("models_app:download"),
            {"repo_id": "tiny/phi3", "revision": "main", "quantization": "q8"},
            **HTMX,
        )
        assert response.status_code == 200
        record = LanguageModel.objects.get()
        seen = watch(record.pk, lambda r: r.status in ("ready", "error"), timeout=120)
        assert seen[-1].status == "ready", seen[-1].error_message
        assert seen[-1].effective_quantization == "q8"
        assert Path(seen[-1].quantized_path, "model.safetensors").exists()
        assert [p["status"] for p in seen[-1].phase_log][-4:] == [
            "downloading",
            "loading",
            "quantizing",
            "ready",
        ]
    finally:
        stop(cluster)


def test_jobs_interrupted_by_a_stopped_studio_are_marked_failed(hub, monkeypatch):
    running = queued_record("tiny/gpt2", "fp16", monkeypatch, hub.endpoint)
    waiting = queued_record("tiny/gpt2", "fp32", monkeypatch, hub.endpoint)
    LanguageModel.objects.filter(pk=running.pk).update(status="quantizing")
    assert lost.fail_interrupted_jobs() == 1
    running.refresh_from_db()
    waiting.refresh_from_db()
    assert running.status == "error" and "stopped while this job was running" in running.error_message
    assert waiting.status == "queued"
