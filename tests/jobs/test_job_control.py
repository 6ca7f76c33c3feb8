"""Cancel in every phase of every job kind, refusals, lost workers, and records that stay gone."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from models_app.jobs import runner
from models_app.jobs.dataset import fetch_hub_dataset
from models_app.jobs.download import run_download
from models_app.ml import hub as hub_lib
from models_app.models import LOST_WORKER_MESSAGE, Dataset, Extraction, LanguageModel
from models_app.progress import Tracker
from models_app.services import datasets as dataset_services
from models_app.services import downloads
from tests.helpers import HTMX

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running_jobs(monkeypatch) -> list[runner.Job]:
    """The Job objects the runner starts, so a test can wait until a job has seen its cancel."""
    started: list[runner.Job] = []
    real_start = runner.Job.start

    def start(job):
        started.append(job)
        real_start(job)

    monkeypatch.setattr(runner.Job, "start", start)
    return started


def cancel_when(monkeypatch, running_jobs, method: str, matches) -> None:
    """Ask for a cancel, as the page's button does, the moment the job writes a matching phase
    or update, and hold the job there until it has noticed (within CANCEL_POLL_SECONDS)."""
    real = getattr(Tracker, method)

    def hooked(tracker, *args, **fields):
        result = real(tracker, *args, **fields)
        if matches(*args, **fields):
            tracker.record_cls.objects.get(pk=tracker.pk).request_cancel()
            deadline = time.monotonic() + 5
            while not running_jobs[-1].should_cancel() and time.monotonic() < deadline:
                time.sleep(0.05)
        return result

    monkeypatch.setattr(Tracker, method, hooked)


def queued_download(hub, fmt: str) -> LanguageModel:
    return downloads.create_download(
        hub_lib.preflight("tiny/llama", endpoint=hub.endpoint), fmt, None, queue=False
    )


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["loading", "quantizing"])
def test_it_cancels_a_download_while_it_loads_or_quantizes(hub, settings, monkeypatch, running_jobs, phase):
    record = queued_download(hub, "q2")
    cancel_when(monkeypatch, running_jobs, "phase", lambda status, *a, **f: status == phase)
    assert run_download(record.pk) == "cancelled"
    record.refresh_from_db()
    assert record.status == "cancelled" and record.phase_log[-2]["status"] == phase
    assert not (settings.HF_CACHE_DIR / "models--tiny--llama").exists()
    assert not list(settings.QUANTIZED_DIR.glob(f"{record.pk}_*"))


@pytest.mark.slow
def test_it_cancels_a_download_mid_transfer_within_two_seconds(hub, settings):
    hub.repos["tiny/llama"].bytes_per_second = 200_000
    record = queued_download(hub, "fp16")
    worker = threading.Thread(target=run_download, args=(record.pk,))
    worker.start()
    deadline = time.monotonic() + 30
    while LanguageModel.objects.get(pk=record.pk).bytes_downloaded < 300_000 and time.monotonic() < deadline:
        time.sleep(0.1)
    asked = time.monotonic()
    LanguageModel.objects.get(pk=record.pk).request_cancel()
    worker.join(10)
    assert time.monotonic() - asked < 2.0
    record.refresh_from_db()
    assert record.status == "cancelled"
    assert not (settings.HF_CACHE_DIR / "models--tiny--llama").exists()


@pytest.mark.slow
def test_it_cancels_a_hub_dataset_while_it_reads_samples(
    owner_client, hub, settings, monkeypatch, running_jobs
):
    record = dataset_services._hub_record("data/corpus", "", "main", "", "text", None, keep_token=False)
    cancel_when(
        monkeypatch, running_jobs, "update", lambda **f: f.get("progress_detail") == "Reading samples"
    )
    assert fetch_hub_dataset(record.pk) == "cancelled"
    record.refresh_from_db()
    assert record.status == "cancelled" and not (settings.DATASETS_DIR / str(record.pk)).exists()
    card = owner_client.get(reverse("models_app:dataset", args=[record.pk]), **HTMX).content.decode()
    assert "Retry" in card  # a cancelled Hub dataset can be fetched again
    monkeypatch.undo()
    owner_client.post(reverse("models_app:dataset-retry", args=[record.pk]), **HTMX)
    record.refresh_from_db()
    assert record.status == "ready" and record.num_samples == 40 and record.attempts == 2


def test_a_dataset_deleted_while_it_is_read_stays_deleted(hub, settings, monkeypatch, running_jobs):
    record = dataset_services._hub_record("data/corpus", "", "main", "", "text", None, keep_token=False)
    real_update = Tracker.update

    def delete_midway(tracker, *args, **fields):
        result = real_update(tracker, *args, **fields)
        if fields.get("progress_detail") == "Reading samples":
            Dataset.objects.get(pk=tracker.pk).delete_with_files()
        return result

    monkeypatch.setattr(Tracker, "update", delete_midway)
    assert fetch_hub_dataset(record.pk) == "cancelled"
    assert not Dataset.objects.filter(pk=record.pk).exists()
    assert not (settings.DATASETS_DIR / str(record.pk)).exists()


def test_it_refuses_to_cancel_a_finished_job(owner_client):
    record = LanguageModel.objects.create(name="done", repo_id="a/b", status="ready")
    card = owner_client.post(reverse("models_app:cancel", args=[record.pk]), **HTMX).content.decode()
    assert "This job has already ended (ready): there is nothing to cancel." in card
    record.refresh_from_db()
    assert record.status == "ready" and not record.cancel_requested


@pytest.mark.parametrize("kind", ["model", "dataset", "extraction"])
def test_a_job_whose_heartbeat_stopped_is_failed_by_the_next_page(owner_client, settings, kind):
    old = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 5)
    model = LanguageModel.objects.create(name="m", repo_id="a/b", status="ready")
    dataset = Dataset.objects.create(name="d", source="upload", file_format="txt", status="ready")
    records = {
        "model": lambda: LanguageModel.objects.create(
            name="x", repo_id="a/c", status="downloading", heartbeat_at=old
        ),
        "dataset": lambda: Dataset.objects.create(
            name="x", source="hub", file_format="txt", status="processing", heartbeat_at=old
        ),
        "extraction": lambda: Extraction.objects.create(
            model=model, dataset=dataset, status="extracting", heartbeat_at=old
        ),
    }
    record = records[kind]()
    fresh = type(record).objects.filter(pk=record.pk)
    assert fresh.get().is_active
    owner_client.get(reverse("models_app:datasets"))
    record = fresh.get()
    assert record.status == record.FAILED and record.error_message == LOST_WORKER_MESSAGE


def test_a_cancel_asked_of_a_dead_job_ends_it_cancelled_with_its_files_removed(owner_client, settings):
    model = LanguageModel.objects.create(name="m", repo_id="a/b", status="ready")
    dataset = Dataset.objects.create(name="d", source="upload", file_format="txt", status="ready")
    record = Extraction.objects.create(
        model=model, dataset=dataset, status="extracting", heartbeat_at=timezone.now()
    )
    record.output_dir.mkdir(parents=True)
    (record.output_dir / "layer_0_residual.npy.partial").write_bytes(b"x" * 100)
    owner_client.post(reverse("models_app:extraction-cancel", args=[record.pk]), **HTMX)
    Extraction.objects.filter(pk=record.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 1)
    )
    owner_client.get(reverse("models_app:extraction", args=[record.pk]))
    record.refresh_from_db()
    assert record.status == "cancelled" and not record.output_dir.exists()


@pytest.mark.slow
def test_it_cancels_a_hub_dataset_mid_download_within_two_seconds(hub, settings, slow_dataset_repo):
    record = dataset_services._hub_record(slow_dataset_repo, "", "main", "", "text", None, keep_token=False)
    worker = threading.Thread(target=fetch_hub_dataset, args=(record.pk,))
    worker.start()
    deadline = time.monotonic() + 30
    while (
        "Downloading: 0.0 of" in (detail := Dataset.objects.get(pk=record.pk).progress_detail)
        or "Downloading:" not in detail
    ):
        assert time.monotonic() < deadline, detail
        time.sleep(0.1)
    assert record.incoming_folder.is_relative_to(settings.DATASETS_DIR) and record.incoming_folder.exists()
    asked = time.monotonic()
    Dataset.objects.get(pk=record.pk).request_cancel()
    worker.join(10)
    assert time.monotonic() - asked < 2.0
    record.refresh_from_db()
    assert record.status == "cancelled" and not record.incoming_folder.exists()


def test_it_refuses_a_hub_dataset_the_disk_cannot_hold(owner_client, hub, monkeypatch, slow_dataset_repo):
    """A full disk cannot be made here: the free space the studio reads is set by hand."""
    monkeypatch.setattr(hub_lib, "free_disk_bytes", lambda path: 5_000_000)
    html = owner_client.post(
        reverse("models_app:dataset-hub"),
        {"repo_id": slow_dataset_repo, "revision": "main", "text_field": "text"},
        **HTMX,
    ).content.decode()
    assert (
        "The files take 3.4 MB and the samples read from them about as much again; the disk has 5.0 MB free."
        in html
    )
    assert not Dataset.objects.exists()


@pytest.mark.slow
def test_a_queued_job_with_no_task_behind_it_is_queued_again(hub, settings):
    """A process stopped between saving a row and queueing its task leaves a row no worker will
    see: the check that notices lost workers queues it again (the database broker here)."""
    from models_app.jobs.lost import check_lost_jobs

    record = queued_download(hub, "fp16")  # saved, never queued
    check_lost_jobs()
    assert LanguageModel.objects.get(pk=record.pk).status == "queued"  # too recent to judge
    LanguageModel.objects.filter(pk=record.pk).update(
        updated_at=timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 1)
    )
    check_lost_jobs()  # queues it; Django-Q2 runs it at once in the tests
    record.refresh_from_db()
    assert record.status == "ready", record.error_message


def test_a_retried_download_starts_from_a_clean_display(owner_client, hub, monkeypatch):
    monkeypatch.setattr(LanguageModel, "enqueue", lambda record: None)  # the queued row, as a page shows it
    record = queued_download(hub, "fp16")
    LanguageModel.objects.filter(pk=record.pk).update(
        status="cancelled",
        progress=41.0,
        bytes_downloaded=700_000,
        speed_bps=150_000.0,
        eta_seconds=12.0,
        phase_detail="Downloading model.safetensors",
    )
    record.refresh_from_db()
    downloads.restart(record, "fp16")
    record.refresh_from_db()
    assert (
        record.status,
        record.progress,
        record.bytes_downloaded,
        record.speed_bps,
        record.eta_seconds,
        record.phase_detail,
    ) == ("queued", 0.0, 0, 0.0, None, "")


@pytest.mark.slow
def test_a_hub_datasets_retry_reads_the_field_it_is_given(owner_client, hub, settings):
    owner_client.post(
        reverse("models_app:dataset-hub"),
        {"repo_id": "data/corpus", "revision": "main", "text_field": "body"},
        **HTMX,
    )
    failed = Dataset.objects.get()
    assert failed.status == "error" and "“body”" in failed.error_message
    owner_client.post(reverse("models_app:dataset-retry", args=[failed.pk]), {"text_field": "text"}, **HTMX)
    failed.refresh_from_db()
    assert failed.status == "ready" and failed.text_field == "text" and failed.num_samples == 40
