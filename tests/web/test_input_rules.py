"""Tokens, revisions and commit ids: refused at the field, before any request carries them, and a
token never reaches a message, a log line or a page."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse

from models_app.jobs.runner import run
from models_app.ml import hub
from models_app.models import Dataset, LanguageModel
from tests.helpers import HTMX
from tests.hubserver import Repo

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("token", ["hf_abc\ndef", "hf_abc def", "hf_ab\x00c", "hf_é", "x" * 1001])
def test_a_token_that_is_not_printable_ascii_is_refused_at_its_field(owner_client, hub, token):
    for url, data in (
        (reverse("models_app:download"), {"repo_id": "tiny/llama", "quantization": "fp16"}),
        (reverse("models_app:preview"), {"repo_id": "tiny/llama", "quantization": "fp16"}),
        (reverse("models_app:dataset-hub"), {"repo_id": "data/corpus", "text_field": "text"}),
    ):
        html = owner_client.post(url, {**data, "token": token}, **HTMX).content.decode()
        # (Django's own check answers first for a NUL character.)
        assert (
            "printable ASCII with no spaces or line breaks" in html
            or "Null characters are not allowed" in html
        ), url
        assert token not in html
    assert not LanguageModel.objects.exists() and not Dataset.objects.exists()
    assert not [r for r in hub.requests if "authorization" in r[2]]  # nothing was sent with it


@pytest.mark.parametrize("revision", ["/abs/path", "../../etc", "a..b", "-rf", "x.lock", "a:b", "a b"])
def test_a_revision_that_is_not_a_ref_name_is_refused_at_its_field(owner_client, hub, revision):
    html = owner_client.post(
        reverse("models_app:download"),
        {"repo_id": "tiny/llama", "quantization": "fp16", "revision": revision},
        **HTMX,
    ).content.decode()
    assert 'id="error-revision"' in html and "A revision is a branch, tag or commit id" in html
    html = owner_client.post(
        reverse("models_app:dataset-hub"),
        {"repo_id": "data/corpus", "text_field": "text", "revision": revision},
        **HTMX,
    ).content.decode()
    assert "A revision is a branch, tag or commit id" in html
    assert not LanguageModel.objects.exists() and not hub.requests


def test_a_malformed_commit_id_from_the_server_is_refused(hub, monkeypatch):
    monkeypatch.setattr(Repo, "sha", property(lambda self: "../../outside"))
    with pytest.raises(hub_module().HubError, match="malformed commit id"):
        hub_module().preflight("tiny/llama", endpoint=hub.endpoint)


def hub_module():
    return hub


def test_the_cache_ref_is_never_written_outside_the_repository(tmp_path):
    pre = hub.Preflight(
        repo_id="tiny/llama",
        revision="../../../escape",
        commit_sha="a" * 40,
        gated=False,
        config={},
        summary={},
        params_count=0,
        params_exact=True,
        files=[],
    )
    with pytest.raises(hub.HubError):
        hub._write_ref(tmp_path, pre)
    assert not list(tmp_path.rglob("escape"))


def test_a_token_in_an_error_never_reaches_the_card_or_the_log(caplog):
    record = LanguageModel.objects.create(name="m", repo_id="tiny/llama", status="queued")
    secret = "s3cret-Token-value"

    def body(job):
        job.secrets.append(secret)
        raise RuntimeError(f"Invalid header value b'Bearer {secret}\\n' and hf_abcdefghijklmnop")

    with caplog.at_level(logging.WARNING):
        assert run(LanguageModel, record.pk, body) == "error"
    record.refresh_from_db()
    assert secret not in record.error_message and "hf_abcdefghijklmnop" not in record.error_message
    assert "[token]" in record.error_message
    assert secret not in caplog.text and "hf_abcdefghijklmnop" not in caplog.text
