"""The admin shows what a record is (what was downloaded, read or extracted) but changes only its
name and owner: a posted change form leaves the rest as it was."""

from __future__ import annotations

import pytest
from django.urls import reverse

from models_app.models import Dataset, Extraction, LanguageModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def records():
    model = LanguageModel.objects.create(
        name="gemma",
        repo_id="tiny/gemma3",
        revision="main",
        quantization="q2",
        effective_quantization="q2",
        trust_remote_code=False,
        commit_sha="a" * 40,
        architecture="gemma3",
        status="ready",
        file_path="/data/models/hub/models--tiny--gemma3/snapshots/" + "a" * 40,
    )
    dataset = Dataset.objects.create(
        name="corpus",
        source="hub",
        source_detail="data/corpus@main:data/train-*.parquet",
        text_field="text",
        file_format="parquet",
        status="ready",
        num_samples=40,
        file_path="/data/datasets/1",
        hub_options={"repo_id": "data/corpus", "commit": "b" * 40, "files": ["data/train.parquet"]},
    )
    extraction = Extraction.objects.create(
        model=model, dataset=dataset, layers=[0, 1], hooks=["residual"], status="completed"
    )
    return model, dataset, extraction


def change(client, record, data: dict):
    url = reverse(f"admin:models_app_{type(record).__name__.lower()}_change", args=[record.pk])
    page = client.get(url)
    assert page.status_code == 200
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    record.refresh_from_db()
    return page.content.decode()


def test_it_keeps_a_models_identity_and_changes_its_name_and_owner(admin_client, records, owner):
    model = records[0]
    page = change(
        admin_client,
        model,
        {
            "name": "renamed",
            "owner": owner.pk,
            "repo_id": "tiny/llama",
            "revision": "dev",
            "quantization": "fp32",
            "trust_remote_code": "on",
            "commit_sha": "c" * 40,
            "architecture": "llama",
            "status": "queued",
            "gated": "on",
            "use_operator_token": "on",
        },
    )
    assert 'name="repo_id"' not in page and "tiny/gemma3" in page  # shown, not an input
    assert (model.name, model.owner) == ("renamed", owner)
    assert (model.repo_id, model.revision, model.quantization, model.effective_quantization) == (
        "tiny/gemma3",
        "main",
        "q2",
        "q2",
    )
    assert not model.trust_remote_code and not model.gated and not model.use_operator_token
    assert (model.commit_sha, model.architecture, model.status) == ("a" * 40, "gemma3", "ready")


def test_it_keeps_what_a_dataset_was_read_from(admin_client, records, owner):
    dataset = records[1]
    change(
        admin_client,
        dataset,
        {
            "name": "renamed",
            "owner": owner.pk,
            "source": "upload",
            "source_detail": "other.txt",
            "text_field": "content",
            "file_format": "txt",
            "file_path": "/etc",
            "use_operator_token": "on",
            "hub_options": '{"repo_id": "data/other"}',
            "num_samples": "1",
        },
    )
    assert (dataset.name, dataset.owner) == ("renamed", owner)
    assert (dataset.source, dataset.source_detail, dataset.text_field, dataset.file_format) == (
        "hub",
        "data/corpus@main:data/train-*.parquet",
        "text",
        "parquet",
    )
    assert dataset.file_path == "/data/datasets/1" and dataset.hub_options["repo_id"] == "data/corpus"
    assert not dataset.use_operator_token and dataset.num_samples == 40


def test_it_keeps_what_an_extraction_read_and_wrote(admin_client, records, owner):
    extraction = records[2]
    other = LanguageModel.objects.create(name="other", repo_id="tiny/gpt2", status="ready")
    change(
        admin_client,
        extraction,
        {"owner": owner.pk, "model": other.pk, "layers": "[5]", "hooks": '["mlp"]', "status": "queued"},
    )
    assert extraction.owner == owner
    assert (extraction.model, extraction.layers, extraction.hooks, extraction.status) == (
        records[0],
        [0, 1],
        ["residual"],
        "completed",
    )


def test_it_leaves_deleting_to_the_studio_which_removes_the_files_too(admin_client, records):
    for record in records:
        name = type(record).__name__.lower()
        refused = admin_client.post(
            reverse(f"admin:models_app_{name}_delete", args=[record.pk]), {"post": "yes"}
        )
        assert refused.status_code == 403
        changelist = admin_client.post(
            reverse(f"admin:models_app_{name}_changelist"),
            {"action": "delete_selected", "_selected_action": [record.pk], "post": "yes"},
        )
        assert changelist.status_code in (200, 302) and type(record).objects.filter(pk=record.pk).exists()
