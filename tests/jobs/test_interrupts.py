"""Real interruptions: Ctrl-C or SIGTERM of a manage.py job command, and a worker killed with
SIGKILL mid-download and mid-extraction. Each ends in a final state, never a stuck record."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from django.urls import reverse

from models_app.models import LOST_WORKER_MESSAGE, Dataset, Extraction, LanguageModel
from tests.conftest import HTMX
from tests.workers import ROOT, start_qcluster, stop, studio_env

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(read, until, timeout: float = 60.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if until(value):
            return value
        time.sleep(every)
    raise AssertionError(f"timed out; last seen: {value!r}")


def model_state(pk: int) -> LanguageModel:
    return LanguageModel.objects.get(pk=pk)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_download_model_cancels_the_job_and_cleans_up(hub, settings, signum):
    hub.repos["tiny/llama"].bytes_per_second = 200_000
    command = subprocess.Popen([sys.executable, "manage.py", "download_model", "tiny/llama",
                                "--quantization", "Q4"], cwd=ROOT, env=studio_env(settings, hub.endpoint),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    record = wait_for(lambda: LanguageModel.objects.first(),
                      lambda r: r is not None and r.bytes_downloaded > 200_000)
    command.send_signal(signum)
    out, err = command.communicate(timeout=30)
    assert command.returncode != 0 and "Download cancelled." in err
    record.refresh_from_db()
    assert record.status == "cancelled" and record.quantization == "q4"
    assert not (settings.HF_CACHE_DIR / "models--tiny--llama").exists()


@pytest.fixture
def clusters(hub, settings, monkeypatch):
    """The downloads and gpu clusters, as run_studio starts them."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    processes = [start_qcluster(settings, hub.endpoint),
                 start_qcluster(settings, hub.endpoint, cluster=settings.GPU_CLUSTER)]
    yield processes
    stop(*processes)


def kill_the_job(record) -> float:
    """SIGKILL the worker process that runs the job (its host:pid is on the record)."""
    os.kill(int(record.worker.rsplit(":", 1)[1]), signal.SIGKILL)
    return time.monotonic()


def test_a_worker_killed_mid_download_is_failed_and_retry_completes(owner_client, hub, settings, clusters):
    hub.repos["tiny/llama"].bytes_per_second = 250_000
    owner_client.post(reverse("models_app:download"), {"repo_id": "tiny/llama", "quantization": "fp16"}, **HTMX)
    pk = LanguageModel.objects.get().pk
    record = wait_for(lambda: model_state(pk), lambda r: r.bytes_downloaded > 300_000)
    killed = kill_the_job(record)
    card = wait_for(lambda: owner_client.get(reverse("models_app:card", args=[pk]), **HTMX).content.decode(),
                    lambda html: LOST_WORKER_MESSAGE in html, timeout=settings.JOB_STALE_SECONDS + 10)
    assert time.monotonic() - killed < settings.JOB_STALE_SECONDS + 5
    assert "Retry" in card and model_state(pk).status == "error"

    hub.repos["tiny/llama"].bytes_per_second = None
    owner_client.post(reverse("models_app:restart", args=[pk]), {"quantization": "fp16"}, **HTMX)
    record = wait_for(lambda: model_state(pk), lambda r: r.status in ("ready", "error"), timeout=90)
    assert record.status == "ready", record.error_message
    assert record.attempts == 2 and record.last_error == LOST_WORKER_MESSAGE
    assert Path(record.file_path, "model.safetensors").stat().st_size == \
        (hub.repos["tiny/llama"].folder / "model.safetensors").stat().st_size


def test_a_worker_killed_mid_extraction_is_failed_and_retry_restarts_cleanly(owner_client, hub, settings,
                                                                          clusters, tmp_path):
    owner_client.post(reverse("models_app:download"), {"repo_id": "tiny/llama", "quantization": "fp32"}, **HTMX)
    model = wait_for(lambda: LanguageModel.objects.get(), lambda r: r.status in ("ready", "error"), timeout=90)
    assert model.status == "ready", model.error_message
    corpus = tmp_path / "long.txt"
    corpus.write_text("\n".join(f"line {i} " + "word " * 60 for i in range(1000)))
    with corpus.open("rb") as handle:
        owner_client.post(reverse("models_app:dataset-upload"), {"name": "long", "text_field": "text",
                                                                 "file": handle}, **HTMX)
    dataset = Dataset.objects.get(status="ready")
    owner_client.post(reverse("models_app:extract-start", args=[model.pk]),
                      {"dataset": dataset.pk, "layers": [0, 1], "hooks": ["residual", "mlp"], "batch_size": 1,
                       "context_length": 64, "top_k": 5, "dtype": "float32"}, **HTMX)
    pk = Extraction.objects.get().pk
    record = wait_for(lambda: Extraction.objects.get(pk=pk), lambda r: r.samples_done >= 50, timeout=90)
    kill_the_job(record)
    wait_for(lambda: owner_client.get(reverse("models_app:extraction", args=[pk]), **HTMX).content.decode(),
             lambda html: LOST_WORKER_MESSAGE in html, timeout=settings.JOB_STALE_SECONDS + 10)

    owner_client.post(reverse("models_app:extraction-retry", args=[pk]), **HTMX)
    record = wait_for(lambda: Extraction.objects.get(pk=pk), lambda r: r.status in ("completed", "failed"),
                      timeout=180, every=0.5)
    assert record.status == "completed", record.error_message
    assert record.attempts == 2 and record.samples_done == 1000
    residual = np.load(record.output_dir / "layer_1_residual.npy", mmap_mode="r")
    assert residual.shape[:2] == (1000, 64) and not list(record.output_dir.glob("*.partial"))
