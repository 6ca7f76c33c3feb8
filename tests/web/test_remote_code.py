"""A decoder-only family transformers does not know, shipped as repository code."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from models_app.models import Dataset, Extraction, LanguageModel
from tests.helpers import HTMX

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def remote_code_allowed(settings):
    settings.ALLOW_REMOTE_CODE = True  # the operator's MISTUDIO_ALLOW_REMOTE_CODE=1


def download(client, repo_id, fmt="q4", trust=False):
    data = {"repo_id": repo_id, "revision": "main", "quantization": fmt}
    if trust:
        data["trust_remote_code"] = "on"
    client.post(reverse("models_app:download"), data, **HTMX)
    return LanguageModel.objects.get(repo_id=repo_id)


def test_it_asks_for_trust_before_running_repository_code(owner_client, hub, settings):
    record = download(owner_client, "tiny/remote")
    assert record.status == "error"
    assert "ships its own model code" in record.error_message
    assert "Trust remote code" in record.error_message
    assert not (settings.HF_CACHE_DIR / "models--tiny--remote").exists()


def test_an_unknown_decoder_works_when_its_layers_can_be_found(
    owner_client, hub, settings, remote_code_allowed
):
    record = download(owner_client, "tiny/remote", "q4", trust=True)
    assert record.status == "ready", record.error_message
    assert record.effective_quantization == "q4"
    hooks = record.architecture_summary["hook_points"]
    assert hooks == {
        "decoder_layers": "blocks",
        "residual": "blocks.{i}",
        "mlp": "blocks.{i}.feed_forward",
        "attention": "blocks.{i}.attention",
    }
    assert record.params_count == 2 * 512 * 128 + 2 * 2 * (128 * 128 + 128)
    modal = owner_client.get(reverse("models_app:architecture", args=[record.pk]), **HTMX).content.decode()
    assert "blocks.{i}.feed_forward" in modal


def test_an_unknown_decoder_without_findable_parts_fails_clearly(owner_client, hub, remote_code_allowed):
    record = download(owner_client, "tiny/remote-odd", "fp16", trust=True)
    assert record.status == "error"
    assert "attention module of a decoder block (Block) could not be identified" in record.error_message


def test_repository_code_is_off_unless_the_operator_allows_it(owner_client, hub):
    page = owner_client.get(reverse("models_app:index")).content.decode()
    assert "MISTUDIO_ALLOW_REMOTE_CODE=1" in page  # the form says why the box is unavailable
    response = owner_client.post(
        reverse("models_app:download"),
        {"repo_id": "tiny/remote", "quantization": "fp16", "trust_remote_code": "on"},
        **HTMX,
    )
    assert "Repository code is turned off on this studio" in response.content.decode()
    assert not LanguageModel.objects.exists()


def test_only_staff_may_ask_for_repository_code(client, other_user, hub, remote_code_allowed):
    client.force_login(other_user)
    response = client.post(
        reverse("models_app:download"),
        {"repo_id": "tiny/remote", "quantization": "fp16", "trust_remote_code": "on"},
        **HTMX,
    )
    assert "Only staff accounts may run repository code" in response.content.decode()
    assert not LanguageModel.objects.exists()


def test_the_job_checks_again_before_running_repository_code(
    owner_client, hub, settings, remote_code_allowed
):
    from models_app.jobs.download import run_download
    from models_app.ml import hub as hub_lib
    from models_app.services import downloads

    pre = hub_lib.preflight("tiny/remote", endpoint=hub.endpoint, trust_remote_code=True)
    record = downloads.create_download(pre, "fp16", None, trust_remote_code=True, queue=False)
    settings.ALLOW_REMOTE_CODE = False  # turned off while the job waited in the queue
    assert run_download(record.pk) == "error"
    record.refresh_from_db()
    assert "Repository code is not allowed on this studio" in record.error_message
    assert not (settings.HF_CACHE_DIR / "models--tiny--remote").exists()


@pytest.fixture
def remote_model_switched_off(owner_client, hub, settings, remote_code_allowed, tmp_path):
    """A ready remote-code model whose code leaves a mark when it runs; then the operator turns
    repository code off."""
    record = download(owner_client, "tiny/remote", "fp16", trust=True)
    assert record.status == "ready", record.error_message
    call_command("add_dataset", "data/corpus", "--name", "corpus", stdout=StringIO())
    mark = tmp_path / "repository-code-ran"
    for name in ("configuration_tiny_decoder.py", "modeling_tiny_decoder.py"):
        module = Path(record.file_path) / name
        code = module.read_text()
        module.unlink()  # a link into the cache's blobs: write a file of its own instead
        # New content is new code to transformers: it runs it again, even in this process.
        module.write_text(f"import pathlib\npathlib.Path({str(mark)!r}).touch()\n{code}")
    settings.ALLOW_REMOTE_CODE = False
    return record, Dataset.objects.get(), mark


def extraction_fields(record, dataset) -> dict:
    return {
        "model": record,
        "dataset": dataset,
        "layers": [0, 1],
        "hooks": ["residual"],
        "batch_size": 4,
        "max_samples": 8,
        "context_length": 16,
        "top_k": 3,
        "dtype": "float32",
    }


@pytest.mark.slow
def test_the_modal_refuses_a_remote_code_model_once_the_switch_is_off(
    owner_client, remote_model_switched_off
):
    record, dataset, mark = remote_model_switched_off
    html = owner_client.post(
        reverse("models_app:extract-start", args=[record.pk]),
        {
            "dataset": dataset.pk,
            "layers": ["0"],
            "hooks": ["residual"],
            "batch_size": 4,
            "context_length": 16,
            "top_k": 3,
            "dtype": "float32",
        },
        **HTMX,
    ).content.decode()
    assert 'id="error-form"' in html
    assert "Repository code is not allowed on this studio" in html and "MISTUDIO_ALLOW_REMOTE_CODE=1" in html
    assert not Extraction.objects.exists() and not mark.exists()


@pytest.mark.slow
def test_the_extraction_job_checks_the_switch_before_loading(remote_model_switched_off, settings):
    from models_app.jobs.extraction import run_extraction
    from models_app.services import extractions

    record, dataset, mark = remote_model_switched_off
    queued = extractions.create(queue=False, **extraction_fields(record, dataset))  # queued while it was on
    assert run_extraction(queued.pk) == "failed"
    queued.refresh_from_db()
    assert queued.error_message.startswith("Repository code is not allowed on this studio")
    assert not mark.exists()  # the repository's code never ran

    settings.ALLOW_REMOTE_CODE = True  # the same extraction with the switch on runs the code
    again = extractions.create(queue=False, **{**extraction_fields(record, dataset), "max_samples": 4})
    assert run_extraction(again.pk) == "completed"
    assert mark.exists()
