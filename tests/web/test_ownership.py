"""Who may change what: everyone signed in reads a shared studio; only a record's owner and
staff change it (rename, cancel, retry, delete, edit)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from models_app.models import Dataset, Extraction, LanguageModel
from templates_app.models import ExtractionTemplate
from tests.web.owned import dataset_of, extraction_of, model_of, template_of

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def bob_client(client, other_user):
    client.force_login(other_user)
    return client


def test_it_refuses_renaming_someone_elses_model(bob_client, alice):
    record = model_of(alice)
    response = bob_client.post(reverse("models_app:rename", args=[record.pk]), {"name": "mine now"}, **HX)
    assert "Only alice, who added it, and staff can change it." in response.content.decode()
    # The Rename link swaps the title: the refusal replaces the whole card instead.
    assert response["HX-Retarget"] == f"#model-{record.pk}" and response["HX-Reswap"] == "outerHTML"
    record.refresh_from_db()
    assert record.name == "llama"


def test_it_refuses_deleting_someone_elses_model(bob_client, alice):
    record = model_of(alice)
    response = bob_client.post(reverse("models_app:delete", args=[record.pk]), **HX)
    assert "Only alice" in response.content.decode()
    assert LanguageModel.objects.filter(pk=record.pk).exists()


def test_it_refuses_cancelling_someone_elses_download(bob_client, alice):
    record = model_of(alice, status="downloading")
    bob_client.post(reverse("models_app:cancel", args=[record.pk]), **HX)
    record.refresh_from_db()
    assert not record.cancel_requested and record.status == "downloading"


def test_it_refuses_restarting_someone_elses_model(bob_client, alice):
    record = model_of(alice, status="error")
    bob_client.post(reverse("models_app:restart", args=[record.pk]), {"quantization": "fp16"}, **HX)
    record.refresh_from_db()
    assert record.status == "error" and record.quantization != "fp16"


def test_a_plain_request_is_refused_with_a_message(bob_client, alice):
    record = model_of(alice)
    response = bob_client.post(reverse("models_app:delete", args=[record.pk]), follow=True)
    assert "Only alice" in response.content.decode()
    assert LanguageModel.objects.filter(pk=record.pk).exists()


def test_the_owner_may_change_their_own_model(client, alice):
    record = model_of(alice)
    client.force_login(alice)
    client.post(reverse("models_app:rename", args=[record.pk]), {"name": "renamed"}, **HX)
    record.refresh_from_db()
    assert record.name == "renamed"


def test_staff_may_change_anyones_model(owner_client, alice):
    record = model_of(alice)
    owner_client.post(reverse("models_app:delete", args=[record.pk]), **HX)
    assert not LanguageModel.objects.filter(pk=record.pk).exists()


def test_a_record_without_owner_is_changed_by_staff_only(bob_client):
    record = model_of(None)
    response = bob_client.post(reverse("models_app:delete", args=[record.pk]), **HX)
    assert "Only staff can change it: it has no owner." in response.content.decode()
    assert LanguageModel.objects.filter(pk=record.pk).exists()


def test_it_refuses_deleting_someone_elses_dataset(bob_client, alice):
    record = dataset_of(alice)
    response = bob_client.post(reverse("models_app:dataset-delete", args=[record.pk]), **HX)
    assert "Only alice" in response.content.decode()
    assert Dataset.objects.filter(pk=record.pk).exists()


def test_it_refuses_cancelling_someone_elses_dataset(bob_client, alice):
    record = dataset_of(alice, status="processing", source="hub")
    bob_client.post(reverse("models_app:dataset-cancel", args=[record.pk]), **HX)
    record.refresh_from_db()
    assert not record.cancel_requested


def test_it_refuses_deleting_someone_elses_extraction(bob_client, alice):
    record = extraction_of(alice)
    response = bob_client.post(reverse("models_app:extraction-delete", args=[record.pk]), **HX)
    assert "Only alice" in response.content.decode()
    assert Extraction.objects.filter(pk=record.pk).exists()


def test_it_refuses_cancelling_or_retrying_someone_elses_extraction(bob_client, alice):
    running = extraction_of(alice, status="extracting")
    failed = extraction_of(alice, model=running.model, dataset=running.dataset, status="failed")
    bob_client.post(reverse("models_app:extraction-cancel", args=[running.pk]), **HX)
    bob_client.post(reverse("models_app:extraction-retry", args=[failed.pk]), **HX)
    running.refresh_from_db()
    failed.refresh_from_db()
    assert not running.cancel_requested and failed.status == "failed"


def test_it_refuses_editing_or_deleting_someone_elses_template(bob_client, alice):
    record = template_of(alice, batch_size=8)
    bob_client.post(
        reverse("templates_app:edit", args=[record.pk]),
        {
            "name": record.name,
            "layer_indices": "0",
            "hook_types": ["residual"],
            "batch_size": 64,
            "context_length": 128,
            "top_k_examples": 10,
            "dtype": "float16",
            "context_prefix_tokens": 25,
            "context_suffix_tokens": 25,
        },
        **HX,
    )
    bob_client.post(reverse("templates_app:favorite", args=[record.pk]), **HX)
    response = bob_client.post(reverse("templates_app:delete", args=[record.pk]), **HX)
    assert "Only alice" in response.content.decode()
    record.refresh_from_db()
    assert record.batch_size == 8 and not record.is_favorite


def test_the_templates_list_offers_edit_and_delete_on_ones_own_templates_only(bob_client, alice, other_user):
    theirs, mine = template_of(alice, name="theirs"), template_of(other_user, name="mine")
    html = bob_client.get(reverse("templates_app:index")).content.decode()
    assert reverse("templates_app:edit", args=[mine.pk]) in html
    assert reverse("templates_app:edit", args=[theirs.pk]) not in html
    assert reverse("templates_app:delete", args=[theirs.pk]) not in html
    assert "by alice" in html


def test_a_copy_of_someone_elses_template_is_ones_own(bob_client, alice, other_user):
    record = template_of(alice)
    bob_client.post(reverse("templates_app:duplicate", args=[record.pk]), **HX)
    copy = ExtractionTemplate.objects.exclude(pk=record.pk).get()
    assert copy.owner == other_user


def test_it_records_who_added_each_record(bob_client, other_user, settings, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("one\ntwo\n")
    with corpus.open("rb") as upload:
        bob_client.post(
            reverse("models_app:dataset-upload"), {"name": "mine", "file": upload, "text_field": "text"}, **HX
        )
    bob_client.post(
        reverse("templates_app:create"),
        {
            "name": "my template",
            "layer_indices": "0",
            "hook_types": ["residual"],
            "batch_size": 8,
            "context_length": 128,
            "top_k_examples": 10,
            "dtype": "float16",
            "context_prefix_tokens": 25,
            "context_suffix_tokens": 25,
        },
        **HX,
    )
    assert Dataset.objects.get(name="mine").owner == other_user
    assert ExtractionTemplate.objects.get(name="my template").owner == other_user


def test_everyone_signed_in_reads_a_shared_studio(bob_client, alice):
    model, dataset = model_of(alice, name="alices-model"), dataset_of(alice, name="alices-corpus")
    extraction = extraction_of(alice, model=model, dataset=dataset)
    assert "alices-model" in bob_client.get(reverse("models_app:index")).content.decode()
    assert "alices-corpus" in bob_client.get(reverse("models_app:datasets")).content.decode()
    assert bob_client.get(reverse("models_app:extraction", args=[extraction.pk])).status_code == 200


def test_an_owner_cannot_delete_a_model_others_extracted_from(client, alice, other_user):
    record = model_of(alice)
    extraction_of(other_user, model=record)
    client.force_login(alice)
    response = client.post(reverse("models_app:delete", args=[record.pk]), **HX)
    assert (
        "1 extraction of other users uses llama: staff can delete it with them." in response.content.decode()
    )
    assert LanguageModel.objects.filter(pk=record.pk).exists() and Extraction.objects.exists()


def test_staff_delete_a_model_with_everyones_extractions(owner_client, alice, other_user):
    record = model_of(alice)
    extraction_of(other_user, model=record)
    owner_client.post(reverse("models_app:delete", args=[record.pk]), **HX)
    assert not LanguageModel.objects.exists() and not Extraction.objects.exists()


def test_a_dataset_others_read_says_who_must_act(client, alice, other_user):
    dataset = dataset_of(alice)
    extraction_of(other_user, dataset=dataset)
    client.force_login(alice)
    response = client.post(reverse("models_app:dataset-delete", args=[dataset.pk]), **HX)
    assert "Extractions of other users use this dataset" in response.content.decode()
    assert Dataset.objects.filter(pk=dataset.pk).exists()
