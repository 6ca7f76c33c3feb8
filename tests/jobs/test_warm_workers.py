"""Real Django-Q2 worker processes warm up as they start and keep the model an extraction used,
releasing it when the model is downloaded again or deleted from another process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from models_app.jobs import warmup
from models_app.jobs.download import run_download
from models_app.ml import hub as hub_lib
from models_app.models import Extraction, LanguageModel
from models_app.services import datasets as dataset_services
from models_app.services import downloads, extractions
from tests.jobs.outputs import TEXTS, arrays, assert_identical
from tests.workers import start_qcluster, stop

# Slow: real qclusters that load models.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for_line(log: Path, text: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if text in line:
                return line
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} in the worker's log:\n{log.read_text(errors='replace')[-3000:]}")


def extract_in_worker(model, dataset) -> Extraction:
    record = extractions.create(
        model=model,
        dataset=dataset,
        layers=[0, 1],
        hooks=["residual", "mlp"],
        batch_size=4,
        context_length=24,
        top_k=3,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        record.refresh_from_db()
        if not record.is_active:
            assert record.status == "completed", record.error_message
            return record
        time.sleep(0.2)
    raise AssertionError(f"extraction {record.pk} still {record.status}")


def test_it_warms_the_worker_and_keeps_the_model_until_it_is_downloaded_again_or_deleted(
    hub, settings, tmp_path, monkeypatch
):
    from django_q.conf import Conf

    record = downloads.create_download(
        hub_lib.preflight("tiny/llama", endpoint=hub.endpoint), "fp32", token=None, queue=False
    )
    assert run_download(record.pk) == "ready"
    record.refresh_from_db()
    (tmp_path / "corpus.txt").write_text("\n".join(TEXTS) + "\n")
    corpus = dataset_services.add_from_file(tmp_path / "corpus.txt", "corpus")
    monkeypatch.setattr(Conf, "SYNC", False)  # jobs go through the ORM broker, as in production
    log = tmp_path / "worker.log"
    worker = start_qcluster(settings, hub.endpoint, cluster=settings.GPU_CLUSTER, log=log)
    try:
        wait_for_line(log, "warmed up in")  # with no job queued: at start, on its own
        first = extract_in_worker(record, corpus)
        second = extract_in_worker(record, corpus)
        assert first.metadata["model"]["loaded_from"] == "disk"
        assert second.metadata["model"]["loaded_from"] == "memory"
        assert_identical(arrays(first), arrays(second))

        downloads.restart(record, "fp32")  # queued for the downloads cluster, which is not running
        wait_for_line(
            log,
            f"model {record.pk} released from this worker's memory: the model is being downloaded again",
            timeout=20,
        )
        assert run_download(record.pk) == "ready"
        record.refresh_from_db()
        third = extract_in_worker(record, corpus)
        assert third.metadata["model"]["loaded_from"] == "disk"
        assert_identical(arrays(first), arrays(third))

        LanguageModel.objects.get(pk=record.pk).delete_with_files()
        wait_for_line(
            log, f"model {record.pk} released from this worker's memory: the model was deleted", timeout=20
        )
    finally:
        stop(worker)


def test_it_does_not_warm_up_a_process_that_runs_jobs_synchronously(monkeypatch):
    from django_q.conf import Conf
    from django_q.signals import post_spawn

    monkeypatch.setattr(Conf, "SYNC", True)
    monkeypatch.setattr(warmup, "_started", False)
    post_spawn.send(sender="django_q", proc_name="MainProcess")
    assert warmup._started is False
    warmup.wait()  # returns at once: nothing is warming up here


def test_it_waits_for_the_web_server_to_listen_before_starting_the_workers():
    import socket
    import subprocess

    from models_app.management.commands.run_studio import wait_until_listening

    alive = subprocess.Popen(["sleep", "30"])
    try:
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            port = server.getsockname()[1]
            assert wait_until_listening("0.0.0.0", port, alive, timeout=5)
        started = time.monotonic()
        assert not wait_until_listening("127.0.0.1", port, alive, timeout=1)  # nothing listens now
        assert time.monotonic() - started < 3
    finally:
        alive.kill()
        alive.wait()
    started = time.monotonic()
    assert not wait_until_listening("127.0.0.1", port, alive, timeout=30)  # a dead server: no waiting
    assert time.monotonic() - started < 1
