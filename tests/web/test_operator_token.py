"""The operator's Hub credentials (HF_TOKEN here) serve only whom MISTUDIO_OPERATOR_TOKEN names:
staff by default. Against the local Hub server's gated repository, which needs a token."""

from __future__ import annotations

import pytest
from django.urls import reverse

from models_app.models import Dataset, LanguageModel
from tests.helpers import HTMX
from tests.hubserver import GOOD_TOKEN

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator_token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)


def preview(client, user):
    client.force_login(user)
    return client.post(
        reverse("models_app:preview"), {"repo_id": "gated/llama", "quantization": "fp16"}, **HTMX
    ).content.decode()


def test_by_default_staff_may_use_it_and_others_may_not(client, hub, operator_token, owner, other_user):
    assert "gated" in preview(client, owner) and "preview-card" in preview(client, owner)
    html = preview(client, other_user)
    assert "preview-card" not in html and "token" in html.lower()


@pytest.mark.parametrize("setting, staff_ok, other_ok", [("everyone", True, True), ("nobody", False, False)])
def test_the_setting_decides(
    client, hub, operator_token, owner, other_user, settings, setting, staff_ok, other_ok
):
    settings.OPERATOR_TOKEN_FOR = setting
    assert ("preview-card" in preview(client, owner)) is staff_ok
    assert ("preview-card" in preview(client, other_user)) is other_ok


def test_a_download_started_by_a_non_staff_user_never_uses_it(
    client, hub, operator_token, other_user, settings
):
    settings.OPERATOR_TOKEN_FOR = "everyone"  # the page lets the request through ...
    client.force_login(other_user)
    client.post(reverse("models_app:download"), {"repo_id": "gated/llama", "quantization": "fp16"}, **HTMX)
    record = LanguageModel.objects.get()
    assert record.use_operator_token and record.status == "ready"  # Q2 runs synchronously here
    settings.OPERATOR_TOKEN_FOR = "staff"
    LanguageModel.objects.all().delete()
    html = client.post(
        reverse("models_app:download"), {"repo_id": "gated/llama", "quantization": "fp16"}, **HTMX
    ).content.decode()
    assert not LanguageModel.objects.exists() and "token" in html.lower()


def test_a_hub_dataset_follows_the_same_rule(client, hub, operator_token, owner, other_user):
    client.force_login(other_user)
    client.post(
        reverse("models_app:dataset-hub"),
        {"repo_id": "data/gated-corpus", "text_field": "text", "name": "theirs"},
        **HTMX,
    )
    theirs = Dataset.objects.get(name="theirs")  # the job ran (synchronously) without the operator's token
    assert theirs.status == "error" and "enter an access token" in theirs.error_message
    client.force_login(owner)
    client.post(
        reverse("models_app:dataset-hub"),
        {"repo_id": "data/gated-corpus", "text_field": "text", "name": "staff"},
        **HTMX,
    )
    assert Dataset.objects.get(name="staff").status == "ready"
