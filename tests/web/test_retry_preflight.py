"""Retry tries a new token, or a gated repository's access, on the Hub first, as a first download
does: a wrong token is said at its field and the record stays as it was."""

from __future__ import annotations

import pytest
from django.urls import reverse

from models_app.models import LanguageModel
from tests.helpers import HTMX
from tests.hubserver import GOOD_TOKEN

pytestmark = pytest.mark.django_db


def failed_gated_model(owner) -> LanguageModel:
    return LanguageModel.objects.create(
        name="llama",
        repo_id="gated/llama",
        gated=True,
        status="error",
        quantization="fp16",
        error_message="boom",
        owner=owner,
    )


@pytest.mark.parametrize(
    "token, message",
    [
        ("hf_not_a_real_token", "rejected by the Hub (401)"),
        ("hf_valid_but_no_access", "does not grant access"),
        ("", "is a gated model"),
    ],
)
def test_a_token_that_cannot_read_the_repository_is_refused(
    owner_client, owner, hub, monkeypatch, token, message
):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    record = failed_gated_model(owner)
    LanguageModel.objects.filter(pk=record.pk).update(use_operator_token=False)
    response = owner_client.post(
        reverse("models_app:restart", args=[record.pk]), {"quantization": "fp16", "token": token}, **HTMX
    )
    html = response.content.decode()
    assert message in html and (not token or token not in html)
    record.refresh_from_db()
    assert record.status == "error" and record.encrypted_token is None


def test_a_token_that_reads_it_queues_the_retry(owner_client, owner, hub, monkeypatch):
    monkeypatch.setattr("models_app.models.LanguageModel.enqueue", lambda record: None)
    record = failed_gated_model(owner)
    owner_client.post(
        reverse("models_app:restart", args=[record.pk]), {"quantization": "fp16", "token": GOOD_TOKEN}, **HTMX
    )
    record.refresh_from_db()
    assert record.status == "queued" and record.encrypted_token
    assert any(
        h.get("authorization") == f"Bearer {GOOD_TOKEN}"
        for _m, path, h in hub.requests
        if "gated/llama" in path
    )


def test_a_hub_dataset_retry_with_a_wrong_token_is_refused(owner_client, owner, hub, monkeypatch):
    from models_app.models import Dataset

    monkeypatch.delenv("HF_TOKEN", raising=False)
    commit = hub.repos["datasets/data/gated-corpus"].sha
    record = Dataset.objects.create(
        name="gated",
        source="hub",
        file_format="parquet",
        status="error",
        owner=owner,
        hub_options={
            "repo_id": "data/gated-corpus",
            "commit": commit,
            "files": ["data/train-00000-of-00001.parquet"],
        },
    )
    response = owner_client.post(
        reverse("models_app:dataset-retry", args=[record.pk]), {"token": "hf_not_a_real_token"}, **HTMX
    )
    assert "rejected by the Hub (401)" in response.content.decode()
    record.refresh_from_db()
    assert record.status == "error" and record.encrypted_token is None
