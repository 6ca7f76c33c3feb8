"""A decoder-only family transformers does not know, shipped as repository code."""
from __future__ import annotations

import pytest
from django.urls import reverse

from models_app.models import LanguageModel
from tests.conftest import HTMX

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


def test_an_unknown_decoder_works_when_its_layers_can_be_found(owner_client, hub, settings, remote_code_allowed):
    record = download(owner_client, "tiny/remote", "q4", trust=True)
    assert record.status == "ready", record.error_message
    assert record.effective_quantization == "q4"
    hooks = record.architecture_summary["hook_points"]
    assert hooks == {"decoder_layers": "blocks", "residual": "blocks.{i}",
                     "mlp": "blocks.{i}.feed_forward", "attention": "blocks.{i}.attention"}
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
    response = owner_client.post(reverse("models_app:download"), {"repo_id": "tiny/remote", "quantization": "fp16",
                                                                  "trust_remote_code": "on"}, **HTMX)
    assert "Repository code is turned off on this studio" in response.content.decode()
    assert not LanguageModel.objects.exists()


def test_only_staff_may_ask_for_repository_code(client, other_user, hub, remote_code_allowed):
    client.force_login(other_user)
    response = client.post(reverse("models_app:download"), {"repo_id": "tiny/remote", "quantization": "fp16",
                                                            "trust_remote_code": "on"}, **HTMX)
    assert "Only staff accounts may run repository code" in response.content.decode()
    assert not LanguageModel.objects.exists()


def test_the_job_checks_again_before_running_repository_code(owner_client, hub, settings, remote_code_allowed):
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
