from __future__ import annotations

import pytest
from django.urls import reverse

from models_app.models import LanguageModel

pytestmark = pytest.mark.django_db

PAGES = [
    ("models_app:index", []),
    ("models_app:datasets", []),
    ("templates_app:index", []),
    ("models_app:card", [1]),
    ("models_app:architecture", [1]),
    ("models_app:rename", [1]),
]
ACTIONS = [
    ("models_app:preview", []),
    ("models_app:download", []),
    ("models_app:cancel", [1]),
    ("models_app:restart", [1]),
    ("models_app:delete", [1]),
]


@pytest.mark.parametrize("name, args", PAGES + ACTIONS)
def test_it_requires_login(anonymous_client, name, args):
    LanguageModel.objects.create(pk=1, name="m", repo_id="a/b")
    method = anonymous_client.post if (name, args) in ACTIONS else anonymous_client.get
    response = method(reverse(name, args=args))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert LanguageModel.objects.filter(pk=1).exists()


def test_admin_needs_staff(client, other_user, owner):
    client.force_login(other_user)
    assert client.get("/admin/").status_code == 302
    client.force_login(owner)
    owner.is_superuser = True
    owner.save()
    assert client.get("/admin/models_app/languagemodel/").status_code == 200


@pytest.mark.parametrize("name", ["models_app:preview", "models_app:download"])
def test_actions_refuse_get(owner_client, name):
    assert owner_client.get(reverse(name)).status_code == 405


def test_the_page_renders_the_form_and_tabs(owner_client):
    html = owner_client.get(reverse("models_app:index")).content.decode()
    for text in (
        "MechInterp Studio",
        ">Models<",
        ">Datasets<",
        ">Templates<",
        'placeholder="e.g., TinyLlama/TinyLlama-1.1B-Chat-v1.0"',
        "Q4 — 4-bit NF4 (recommended)",
        "for gated models like Llama or Gemma",
        'type="password"',
        "Trust remote code",
        "htmx",
        "No models yet",
    ):
        assert text in html, text
    assert 'value="q4" selected' in html
    assert (
        'name="trust_remote_code"' in html and "checked" not in html.split('name="trust_remote_code"')[1][:40]
    )


def test_it_filters_sorts_and_paginates(owner_client):
    for i in range(15):
        LanguageModel.objects.create(
            name=f"model-{i:02d}",
            repo_id=f"org/m{i}",
            quantization="q4" if i % 2 else "fp16",
            status="ready" if i < 10 else "error",
            architecture="llama" if i < 5 else "gpt2",
            params_count=i * 1000,
        )
    index = reverse("models_app:index")
    page1 = owner_client.get(
        index, {"sort": "name"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="model-list"
    ).content.decode()
    assert page1.count('class="card ') == 12 and "Page 1 of 2" in page1 and "<html" not in page1
    page2 = owner_client.get(index, {"sort": "name", "page": 2}).content.decode()
    assert "model-14" in page2 and "model-00" not in page2
    search = owner_client.get(index, {"q": "model-03"}).content.decode()
    assert search.count('class="card ') == 1
    errors = owner_client.get(
        index, {"status": "error", "architecture": "gpt2", "quantization": "q4"}
    ).content.decode()
    assert errors.count('class="card ') == 2  # 11 and 13
    by_params = owner_client.get(index, {"sort": "params"}).content.decode()
    assert by_params.index("model-14") < by_params.index("model-13")


def test_deleting_a_running_model_is_refused(owner_client):
    record = LanguageModel.objects.create(name="busy", repo_id="a/b", status="downloading")
    html = owner_client.post(
        reverse("models_app:delete", args=[record.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "cancel it first" in html
    assert LanguageModel.objects.filter(pk=record.pk).exists()


def test_restart_refuses_a_duplicate_format(owner_client):
    LanguageModel.objects.create(name="a", repo_id="a/b", quantization="q8", status="ready")
    record = LanguageModel.objects.create(name="b", repo_id="a/b", quantization="q4", status="error")
    html = owner_client.post(
        reverse("models_app:restart", args=[record.pk]), {"quantization": "q8"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "already in the studio in Q8" in html
    record.refresh_from_db()
    assert record.status == "error" and record.quantization == "q4"


def test_a_download_without_data_for_a_while_shows_as_stalled(owner_client):
    from datetime import timedelta

    from django.utils import timezone

    record = LanguageModel.objects.create(
        name="slow", repo_id="a/b", status="downloading", bytes_downloaded=10, bytes_total=100, speed_bps=5.0
    )
    card = owner_client.get(reverse("models_app:card", args=[record.pk]), HTTP_HX_REQUEST="true")
    assert "stalled" not in card.content.decode() and "ETA" in card.content.decode()
    LanguageModel.objects.filter(pk=record.pk).update(
        heartbeat_at=timezone.now(), stalled_since=timezone.now() - timedelta(seconds=40)
    )
    card = owner_client.get(reverse("models_app:card", args=[record.pk]), HTTP_HX_REQUEST="true")
    assert "stalled — no data for" in card.content.decode()


@pytest.mark.parametrize("path", ["/admin/models_app/dataset/", "/admin/models_app/extraction/"])
def test_admin_lists_datasets_and_extractions(client, owner, path):
    owner.is_superuser = True
    owner.save()
    client.force_login(owner)
    assert client.get(path).status_code == 200
