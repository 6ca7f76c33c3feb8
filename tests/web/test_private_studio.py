"""MISTUDIO_PRIVATE=1: each user sees only their own records; staff see all."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.web.owned import dataset_of, extraction_of, model_of, template_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def private(settings):
    settings.PRIVATE = True


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def alices_records(alice):
    model, dataset = model_of(alice, name="alices-model"), dataset_of(alice, name="alices-corpus")
    return {
        "model": model,
        "dataset": dataset,
        "extraction": extraction_of(alice, model=model, dataset=dataset),
        "template": template_of(alice, name="alices-template"),
    }


LISTS = [
    ("models_app:index", "alices-model"),
    ("models_app:datasets", "alices-corpus"),
    ("templates_app:index", "alices-template"),
]


@pytest.mark.parametrize("page, name", LISTS)
def test_its_lists_show_only_ones_own_records(private, alices_records, client, other_user, page, name):
    client.force_login(other_user)
    assert name not in client.get(reverse(page)).content.decode()


def test_the_extractions_list_shows_only_ones_own(private, alices_records, client, other_user):
    client.force_login(other_user)
    page = client.get(reverse("models_app:extractions")).context["page"]
    assert list(page.object_list) == []


@pytest.mark.parametrize(
    "view, key",
    [
        ("models_app:extraction", "extraction"),
        ("models_app:architecture", "model"),
        ("models_app:dataset", "dataset"),
        ("models_app:extract", "model"),
        ("models_app:extraction-examples", "extraction"),
    ],
)
def test_someone_elses_record_is_not_found(private, alices_records, client, other_user, view, key):
    client.force_login(other_user)
    assert client.get(reverse(view, args=[alices_records[key].pk]), HTTP_HX_REQUEST="true").status_code == 404


def test_the_owner_sees_their_records(private, alices_records, client, alice):
    client.force_login(alice)
    assert "alices-model" in client.get(reverse("models_app:index")).content.decode()
    assert (
        client.get(reverse("models_app:extraction", args=[alices_records["extraction"].pk])).status_code
        == 200
    )


def test_staff_see_everyones_records(private, alices_records, owner_client):
    for page, name in LISTS:
        assert name in owner_client.get(reverse(page)).content.decode()


def test_the_extraction_form_offers_only_ones_own_datasets(private, alices_records, client, other_user):
    mine = model_of(other_user, repo_id="tiny/mine", architecture_config={"num_hidden_layers": 2})
    client.force_login(other_user)
    html = client.get(reverse("models_app:extract", args=[mine.pk])).content.decode()
    assert "alices-corpus" not in html


def test_a_download_someone_else_has_is_ones_own_without_naming_theirs(
    private, alices_records, client, other_user, hub
):
    from models_app.models import LanguageModel

    model_of(alices_records["model"].owner, name="secret-name", repo_id="tiny/llama", quantization="fp16")
    client.force_login(other_user)
    response = client.post(
        reverse("models_app:download"),
        {"repo_id": "tiny/llama", "quantization": "fp16"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert "secret-name" not in html and "Already" not in html and "another user" not in html
    assert (
        LanguageModel.objects.filter(owner=other_user, repo_id="tiny/llama", quantization="fp16").count() == 1
    )
    again = client.post(
        reverse("models_app:download"),
        {"repo_id": "tiny/llama", "quantization": "fp16"},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert "Already downloading: tiny/llama@main in FP16 is in the studio" in again  # one's own is named


def test_a_template_name_someone_else_has_is_ones_to_use(private, alices_records, client, other_user):
    from templates_app.models import ExtractionTemplate

    client.force_login(other_user)
    fields = {
        "layer_indices": "0",
        "hook_types": "residual",
        "batch_size": 8,
        "context_length": 128,
        "top_k_examples": 10,
        "context_prefix_tokens": 25,
        "context_suffix_tokens": 25,
        "dtype": "float16",
        "extra_metadata": "{}",
    }
    created = client.post(reverse("templates_app:create"), {**fields, "name": "ALICES-template"})
    assert created.status_code == 302
    refused = client.post(
        reverse("templates_app:create"), {**fields, "name": "alices-TEMPLATE"}
    ).content.decode()
    assert "A template named “ALICES-template” already exists" in refused  # one's own clash is named
    from templates_app import import_export

    summary = import_export.import_payload(
        {
            "version": "1.0",
            "templates": [{"name": "alices-template", "layer_indices": [1], "hook_types": ["mlp"]}],
        },
        "rename",
        user=other_user,
    )
    assert [item.name for item in summary.created] == ["alices-template (2)"]  # past one's own, not Alice's
    assert ExtractionTemplate.objects.get(owner=alices_records["template"].owner).name == "alices-template"


def test_a_model_card_counts_only_ones_own_extractions(private, alices_records, client, other_user, owner):
    from models_app.consumers import render_update
    from models_app.models import LanguageModel

    mine = model_of(other_user, name="mine", repo_id="tiny/mine")
    extraction_of(other_user, model=mine, status="completed")
    latest = extraction_of(
        owner, model=mine, status="completed", dataset=dataset_of(owner, name="staff-corpus")
    )
    client.force_login(other_user)
    for html in (
        client.get(reverse("models_app:index")).content.decode(),
        client.get(reverse("models_app:card", args=[mine.pk]), HTTP_HX_REQUEST="true").content.decode(),
        "".join(render_update(LanguageModel.KIND, mine.pk, viewer=other_user)[0]),
    ):
        assert "staff-corpus" not in html and f"Extraction {latest.pk}<" not in html
        assert '1 completed extraction"' in html
    assert "2 completed extractions" in "".join(render_update(LanguageModel.KIND, mine.pk)[0])  # everyone's


def test_folders_found_on_disk_are_staffs_in_a_private_studio(
    private, client, other_user, owner_client, settings
):
    import json

    folder = settings.ACTIVATIONS_DIR / "restored"
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(
        json.dumps({"complete": True, "files": ["metadata.json"], "statistics": {}})
    )
    assert "restored" in owner_client.get(reverse("models_app:extractions")).content.decode()
    client.force_login(other_user)
    assert "restored" not in client.get(reverse("models_app:extractions")).content.decode()
    response = client.post(reverse("models_app:extraction-import"), {"folder": "restored"}, follow=True)
    assert "Only staff can import" in response.content.decode() and folder.exists()
