"""What a lost worker leaves on disk: a real qcluster killed with SIGKILL mid-extraction and
mid-download leaves `.partial` files and an `.incomplete` blob; they are counted on the page while
they exist. When the job is failed as stale, what a Retry can use stays (an extraction's
checkpointed rows, a download's complete blobs) and the rest goes; deleting the record removes
them all."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from io import StringIO

import psutil
import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from models_app.formatting import bytesize
from models_app.jobs.lost import check_lost_jobs
from models_app.ml import storage
from models_app.models import LOST_WORKER_MESSAGE, Dataset, Extraction, LanguageModel, ModelStatus
from tests.helpers import HTMX, wait_for
from tests.workers import kill_the_job

# Slow: real qclusters killed mid-job.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def blobs_dir(settings, repo_id: str):
    return storage.repo_cache_dir(settings.HF_CACHE_DIR, repo_id) / "blobs"


def unfinished(settings, repo_id: str) -> list:
    return sorted(p.name for p in blobs_dir(settings, repo_id).glob("*.incomplete"))


def test_a_killed_extraction_keeps_its_checkpointed_files_for_retry_until_deleted(
    owner_client, hub, settings, clusters, tmp_path
):
    call_command(
        "download_model", "tiny/llama", "--quantization", "fp32", stdout=StringIO(), stderr=StringIO()
    )
    model = LanguageModel.objects.get(status="ready")
    corpus = tmp_path / "long.txt"
    corpus.write_text("\n".join(f"line {i} " + "word " * 60 for i in range(1000)))
    with corpus.open("rb") as handle:
        owner_client.post(
            reverse("models_app:dataset-upload"),
            {"name": "long", "text_field": "text", "file": handle},
            **HTMX,
        )
    dataset = wait_for(lambda: Dataset.objects.filter(status="ready").first(), bool, timeout=60)
    owner_client.post(
        reverse("models_app:extract-start", args=[model.pk]),
        {
            "dataset": dataset.pk,
            "layers": [0, 1],
            "hooks": ["residual", "mlp"],
            "batch_size": 1,
            "context_length": 64,
            "top_k": 5,
            "dtype": "float32",
        },
        **HTMX,
    )
    record = wait_for(
        lambda: Extraction.objects.get(),
        lambda r: r.samples_done >= 50 and r.resume_point is not None,  # a checkpoint was taken
        timeout=90,
    )
    folder = record.output_dir
    kill_the_job(record)
    time.sleep(0.5)  # the writer thread died with its process: the folder is what it left

    assert list(folder.glob("*.partial")) and Extraction.objects.get().is_active
    page = owner_client.get(reverse("models_app:extraction", args=[record.pk])).content.decode()
    assert f"{bytesize(storage.disk_usage(folder))} on disk in unfinished files" in page

    wait_for(
        lambda: owner_client.get(reverse("models_app:extraction", args=[record.pk]), **HTMX).content.decode(),
        lambda html: LOST_WORKER_MESSAGE in html,
        timeout=settings.JOB_STALE_SECONDS + 10,
    )
    # What its last checkpoint counts stays for Retry (test_resume_after_kill.py); the rest goes
    # with the extraction.
    kept = Extraction.objects.get().resume_point
    assert kept is not None and list(folder.glob("*.partial"))
    page = owner_client.get(reverse("models_app:extraction", args=[record.pk])).content.decode()
    assert (
        f"{bytesize(storage.disk_usage(folder))} on disk in unfinished files, holding"
        f" {kept['samples_done']} of 1000 samples" in page
    )
    owner_client.post(reverse("models_app:extraction-delete", args=[record.pk]), **HTMX)
    assert not folder.exists() and not Extraction.objects.exists()


def test_a_lost_extraction_without_a_checkpoint_leaves_nothing(owner_client, settings):
    """A worker killed before its first checkpoint: the `.partial` files are all it left, and no
    Retry can use them."""
    model = LanguageModel.objects.create(name="m", repo_id="a/b", status="ready")
    dataset = Dataset.objects.create(name="d", source="upload", file_format="txt", status="ready")
    record = Extraction.objects.create(
        model=model,
        dataset=dataset,
        status="extracting",
        heartbeat_at=timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 1),
    )
    record.output_dir.mkdir(parents=True)
    (record.output_dir / "layer_0_residual.npy.partial").write_bytes(b"x" * 100)
    assert check_lost_jobs() == 1
    record.refresh_from_db()
    assert record.status == "failed" and not record.output_dir.exists()


def test_it_removes_a_killed_downloads_incomplete_blob_and_retry_completes(
    owner_client, hub, settings, clusters
):
    hub.repos["tiny/llama"].bytes_per_second = 150_000
    owner_client.post(
        reverse("models_app:download"), {"repo_id": "tiny/llama", "quantization": "fp16"}, **HTMX
    )
    pk = LanguageModel.objects.get().pk
    weights = (hub.repos["tiny/llama"].folder / "model.safetensors").stat().st_size

    def far_from_done(record) -> bool:
        """The weights half-written with at least four seconds of transfer left (a loaded machine
        may take a second or two to kill): the kill below then always finds the transfer mid-file,
        never between two files or done."""
        blobs = unfinished(settings, "tiny/llama")
        sizes = [storage.file_disk_usage(blobs_dir(settings, "tiny/llama") / b) for b in blobs]
        return record.bytes_downloaded > 200_000 and any(0 < size < weights - 600_000 for size in sizes)

    record = wait_for(lambda: LanguageModel.objects.get(pk=pk), far_from_done)
    transfer = psutil.Process(int(record.worker.rsplit(":", 1)[1])).children()
    kill_the_job(record)
    # At once, well inside JOB_STALE_SECONDS (the job still counts as running): the blob is there
    # and the card counts it. Its transfer child may write on until it notices its parent is gone,
    # so the card is read before the blob's size, which can only have grown.
    card = owner_client.get(reverse("models_app:card", args=[pk]), **HTMX).content.decode()
    [blob] = unfinished(settings, "tiny/llama")
    size = storage.file_disk_usage(blobs_dir(settings, "tiny/llama") / blob)
    assert LanguageModel.objects.get(pk=pk).is_active and size > 0
    shown = re.search(r"\(([\d.]+) (B|KB|MB|GB) unfinished\)", card)
    assert shown, card
    unit = 1000 ** ["B", "KB", "MB", "GB"].index(shown[2])
    assert 0 < float(shown[1]) * unit <= size + unit / 20, (shown[0], size)  # rounded to a tenth
    psutil.wait_procs(transfer, timeout=10)  # the transfer's child notices its parent is gone

    wait_for(
        lambda: owner_client.get(reverse("models_app:card", args=[pk]), **HTMX).content.decode(),
        lambda html: LOST_WORKER_MESSAGE in html,
        timeout=settings.JOB_STALE_SECONDS + 10,
    )
    assert unfinished(settings, "tiny/llama") == []
    kept = [p.name for p in blobs_dir(settings, "tiny/llama").iterdir()]
    assert kept, "the complete files stay for the Retry"

    hub.repos["tiny/llama"].bytes_per_second = None
    hub.requests.clear()
    owner_client.post(reverse("models_app:restart", args=[pk]), {"quantization": "fp16"}, **HTMX)
    record = wait_for(
        lambda: LanguageModel.objects.get(pk=pk), lambda r: r.status in ("ready", "error"), timeout=90
    )
    assert record.status == "ready", record.error_message
    assert unfinished(settings, "tiny/llama") == []
    snapshot = storage.snapshot_dir(settings.HF_CACHE_DIR, "tiny/llama", record.commit_sha)
    assert (snapshot / "model.safetensors").read_bytes() == (
        hub.repos["tiny/llama"].folder / "model.safetensors"
    ).read_bytes()


def half_written_blob(settings, repo_id: str, name: str = "0123abcd.9f8e7d6c.incomplete"):
    folder = blobs_dir(settings, repo_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"x" * 300_000)
    return folder / name


def downloading(repo_id: str, stale: bool, **fields) -> LanguageModel:
    beat = timezone.now() - timedelta(seconds=3600 if stale else 0)
    return LanguageModel.objects.create(
        name=repo_id,
        repo_id=repo_id,
        status=ModelStatus.DOWNLOADING,
        heartbeat_at=beat,
        commit_sha="c" * 40,
        **fields,
    )


def test_it_keeps_a_blob_another_running_download_may_be_writing_until_that_one_ends(settings):
    lost = downloading("org/m", stale=True, quantization="q4")
    running = downloading("org/m", stale=False, quantization="fp16")
    blob = half_written_blob(settings, "org/m")

    assert check_lost_jobs() == 1
    assert LanguageModel.objects.get(pk=lost.pk).status == ModelStatus.ERROR and blob.exists()
    assert LanguageModel.objects.get(pk=lost.pk).unfinished_bytes == storage.file_disk_usage(blob)

    LanguageModel.set(running.pk, heartbeat_at=timezone.now() - timedelta(seconds=3600))
    assert check_lost_jobs() == 1  # the other one's worker is lost too
    assert not blob.exists()


def test_it_removes_unfinished_files_when_a_model_or_an_extraction_is_deleted(settings, hub):
    call_command(
        "download_model", "tiny/llama", "--quantization", "fp16", stdout=StringIO(), stderr=StringIO()
    )
    call_command("add_dataset", "data/corpus", "--name", "corpus", stdout=StringIO())
    model, dataset = LanguageModel.objects.get(), Dataset.objects.get()
    other = LanguageModel.objects.create(
        name="llama q4",
        repo_id="tiny/llama",
        commit_sha=model.commit_sha,
        quantization="q4",
        status=ModelStatus.ERROR,
    )
    blob = half_written_blob(settings, "tiny/llama")
    partial_copy = settings.QUANTIZED_DIR / f"{other.pk}_q4.partial"
    partial_copy.mkdir(parents=True)
    (partial_copy / "model.safetensors").write_bytes(b"q" * 100_000)
    assert other.unfinished_bytes == storage.file_disk_usage(blob) + storage.disk_usage(partial_copy)

    lost = Extraction.objects.create(model=other, dataset=dataset, status="failed")
    lost.output_dir.mkdir(parents=True)
    (lost.output_dir / "layer_0_residual.npy.partial").write_bytes(b"a" * 100_000)
    assert lost.unfinished_bytes > 0

    other.delete_with_files()  # the ready model of the same repository keeps its files
    assert not blob.exists() and not partial_copy.exists() and not lost.output_dir.exists()
    assert (
        storage.snapshot_dir(settings.HF_CACHE_DIR, "tiny/llama", model.commit_sha) / "config.json"
    ).exists()
