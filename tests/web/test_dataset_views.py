from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from models_app.ml.datasets import TextDataset
from models_app.models import Dataset
from tests.conftest import HTMX

pytestmark = pytest.mark.django_db


def upload(client, name, content, text_field="text", **extra):
    data = {"file": SimpleUploadedFile(name, content if isinstance(content, bytes) else content.encode()),
            "text_field": text_field, "name": ""}
    return client.post(reverse("models_app:dataset-upload"), data, **HTMX, **extra)


def test_the_tab_lists_datasets_with_a_preview(owner_client, tmp_path):
    html = owner_client.get(reverse("models_app:datasets")).content.decode()
    assert "No datasets yet" in html and "Upload a file" in html and "From the HuggingFace Hub" in html
    upload(owner_client, "notes.txt", "alpha sample\nbeta sample\n")
    html = owner_client.get(reverse("models_app:datasets")).content.decode()
    assert "alpha sample" in html and "notes" in html and "2" in html


def test_an_upload_becomes_a_ready_dataset(owner_client):
    lines = "\n".join(json.dumps({"body": f"text {i}"}) for i in range(5))
    response = upload(owner_client, "corpus.jsonl", lines, text_field="body")
    html = response.content.decode()
    record = Dataset.objects.get()
    assert record.status == "ready" and record.num_samples == 5 and record.name == "corpus"
    assert f'id="dataset-{record.pk}"' in html and 'id="upload-form"' in html
    assert list(TextDataset(record.file_path))[:2] == ["text 0", "text 1"]


def test_a_large_upload_streams_through_a_temporary_file(owner_client):
    content = ("a sample line of text\n" * 150_000).encode()  # 3.3 MB: over Django's in-memory limit
    upload(owner_client, "big.txt", content)
    assert Dataset.objects.get().num_samples == 150_000


@pytest.mark.parametrize("name, content, field, message", [
    ("a.bin.txt", b"\x00\x01\x02", "text", "looks binary"),
    ("empty.txt", b"", "text", "The submitted file is empty."),
    ("blank.txt", b"\n \n", "text", "The file has no samples."),
    ("a.jsonl", b'{"body": "x"}\n', "text", "Line 1 has no field “text”"),
    ("b.jsonl", b'{"text": "x"}\n{"text": \n', "text", "Line 2 is not valid JSON"),
])
def test_bad_uploads_are_explained_at_the_field(owner_client, settings, name, content, field, message):
    html = upload(owner_client, name, content, field).content.decode()
    assert message in html and 'id="error-upload-file"' in html
    assert not Dataset.objects.exists()
    assert not settings.DATASETS_DIR.exists() or not any(settings.DATASETS_DIR.iterdir())


def test_an_oversized_upload_is_refused_before_it_is_read(owner_client, settings):
    settings.MAX_UPLOAD_BYTES = 1000
    html = upload(owner_client, "big.txt", "x\n" * 2000).content.decode()
    assert "the studio accepts at most 0.00 GB per file" in html
    assert not Dataset.objects.exists()


def test_a_hub_dataset_is_added_from_the_tab(owner_client, hub):
    html = owner_client.post(reverse("models_app:dataset-hub"),
                             {"repo_id": "data/corpus", "revision": "main", "text_field": "text"}, **HTMX).content.decode()
    record = Dataset.objects.get()
    assert record.num_samples == 40 and f'id="dataset-{record.pk}"' in html
    bad = owner_client.post(reverse("models_app:dataset-hub"),
                            {"repo_id": "data/corpus", "revision": "main", "text_field": "body"}, **HTMX).content.decode()
    assert "has no column “body”" in bad and 'id="error-hub-text_field"' in bad
    missing = owner_client.post(reverse("models_app:dataset-hub"),
                                {"repo_id": "data/nope", "text_field": "text"}, **HTMX).content.decode()
    assert "was not found on the Hub" in missing and 'id="error-hub-repo_id"' in missing
    assert Dataset.objects.count() == 1


def test_deleting_a_dataset_from_the_tab(owner_client):
    upload(owner_client, "notes.txt", "a\nb\n")
    record = Dataset.objects.get()
    html = owner_client.post(reverse("models_app:dataset-delete", args=[record.pk]), **HTMX).content.decode()
    assert "Deleted notes" in html and not Dataset.objects.exists()
