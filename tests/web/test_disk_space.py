"""A full disk cannot be produced safely on a shared machine, so these tests inject it: the free
space the studio sees, and an ENOSPC from the file writes of a download."""

from __future__ import annotations

import errno
import shutil
from collections import namedtuple

import pytest
from django.urls import reverse

from models_app.jobs.download import run_download
from models_app.ml import hub as hub_lib
from models_app.models import LanguageModel
from models_app.services import downloads as services
from tests.helpers import HTMX

pytestmark = pytest.mark.django_db(transaction=True)
Usage = namedtuple("Usage", "total used free")


def test_it_refuses_a_download_the_disk_cannot_hold(owner_client, hub, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 50_000, 50_000))
    preview = owner_client.post(
        reverse("models_app:preview"), {"repo_id": "tiny/llama", "quantization": "q4"}, **HTMX
    ).content.decode()
    assert "not enough" in preview
    response = owner_client.post(
        reverse("models_app:download"), {"repo_id": "tiny/llama", "quantization": "q4"}, **HTMX
    ).content.decode()
    assert "Not enough disk space: the download needs 0.00 GB and 0.00 GB is free." in response
    assert LanguageModel.objects.count() == 0


def test_a_disk_full_during_download_fails_cleanly(hub, monkeypatch, settings):
    record = services.create_download(
        hub_lib.preflight("tiny/gpt2", endpoint=hub.endpoint), "fp16", None, queue=False
    )
    real_download = hub_lib.hf_hub_download

    def download_then_fill_the_disk(repo_id, filename, **kwargs):
        if filename == "model.safetensors":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_download(repo_id, filename, **kwargs)

    monkeypatch.setattr(hub_lib, "hf_hub_download", download_then_fill_the_disk)
    # A full disk cannot be made for real here: the transfer runs in this process so that the
    # fault above reaches it (the job normally runs it in a child process).
    monkeypatch.setattr(
        "models_app.ml.download_process.download_in_child",
        lambda pre, cache_dir, **kwargs: hub_lib.download(pre, cache_dir, **kwargs),
    )
    assert run_download(record.pk) == "error"
    record.refresh_from_db()
    assert record.error_message == "The disk is full: free some space and retry."
    assert not (settings.HF_CACHE_DIR / "models--tiny--gpt2").exists()
