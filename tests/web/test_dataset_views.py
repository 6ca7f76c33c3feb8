from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from models_app.ml.datasets import TextDataset
from models_app.models import Dataset
from tests.helpers import HTMX

pytestmark = pytest.mark.django_db


def upload(client, name, content, text_field="text", **extra):
    data = {
        "file": SimpleUploadedFile(name, content if isinstance(content, bytes) else content.encode()),
        "text_field": text_field,
        "name": "",
    }
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


@pytest.mark.django_db(transaction=True)
def test_a_large_upload_is_moved_into_the_data_directory_and_read_by_a_job(owner_client, settings):
    content = ("a sample line of text\n" * 150_000).encode()  # 3.3 MB: over Django's in-memory limit
    upload(owner_client, "big.txt", content)
    record = Dataset.objects.get()
    assert record.status == "ready" and record.num_samples == 150_000
    assert not record.incoming_folder.exists() and not any(settings.FILE_UPLOAD_TEMP_DIR.iterdir())


@pytest.mark.django_db(transaction=True)
def test_a_parquet_upload_that_cannot_be_read_fails_on_its_card(owner_client, settings, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["a"]}), tmp_path / "small.parquet")
    html = upload(owner_client, "small.parquet", (tmp_path / "small.parquet").read_bytes()).content.decode()
    record = Dataset.objects.get()
    assert record.status == "error" and "has no column “text” (it has: body)" in record.error_message
    assert f'id="dataset-{record.pk}"' in html and not record.incoming_folder.exists()


@pytest.mark.parametrize(
    "name, content, field, message",
    [
        ("a.bin.txt", b"\x00\x01\x02", "text", "looks binary"),
        ("empty.txt", b"", "text", "The submitted file is empty."),
        ("blank.txt", b"\n \n", "text", "The file has no samples."),
        ("b.jsonl", b'{"text": "x"}\n{"text": \n', "text", "Line 2 is not valid JSON"),
    ],
)
def test_bad_uploads_are_explained_at_the_field(owner_client, settings, name, content, field, message):
    html = upload(owner_client, name, content, field).content.decode()
    assert message in html and 'id="error-upload-file"' in html
    assert not Dataset.objects.exists()
    assert not settings.DATASETS_DIR.exists() or not any(settings.DATASETS_DIR.iterdir())


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("notes.csv", b"body\nfirst\n", "The CSV has no column “text” (it has: body)."),
        ("notes.jsonl", b'{"body": "x"}\n', "Line 1 has no field “text” (it has: body)."),
        ("notes.json", b'[{"text": "x"}, {"text": 3}]', "Item 2: field “text” is not text."),
    ],
)
def test_it_explains_a_wrong_column_under_the_text_field(owner_client, name, content, message):
    html = upload(owner_client, name, content, "text").content.decode()
    error = re.search(r'<small class="field-error" id="error-upload-(\w+)">([^<]*)</small>', html)
    assert error and error.groups() == ("text_field", message), html
    assert 'id="error-upload-file"' not in html and not Dataset.objects.exists()


def test_an_oversized_upload_is_refused_before_it_is_read(owner_client, settings):
    settings.MAX_UPLOAD_BYTES = 1000
    html = upload(owner_client, "big.txt", "x\n" * 2000).content.decode()
    assert "the studio accepts at most 0.00 GB per file" in html
    assert not Dataset.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_hub_dataset_is_fetched_by_a_job_from_the_tab(owner_client, hub, settings):
    html = owner_client.post(
        reverse("models_app:dataset-hub"),
        {"repo_id": "data/corpus", "revision": "main", "text_field": "text"},
        **HTMX,
    ).content.decode()
    record = Dataset.objects.get()
    assert record.status == "ready" and record.num_samples == 40  # the job ran (synchronous Q2)
    assert f'id="dataset-{record.pk}"' in html
    missing = owner_client.post(
        reverse("models_app:dataset-hub"), {"repo_id": "data/nope", "text_field": "text"}, **HTMX
    ).content.decode()
    assert "was not found on the Hub" in missing and 'id="error-hub-repo_id"' in missing
    nothing = owner_client.post(
        reverse("models_app:dataset-hub"),
        {"repo_id": "data/corpus", "files": "*.xml", "text_field": "text"},
        **HTMX,
    ).content.decode()
    assert "has no file matching *.xml" in nothing and 'id="error-hub-files"' in nothing
    assert Dataset.objects.count() == 1

    # A problem found only once the files are read: the card says so, and no file stays.
    owner_client.post(
        reverse("models_app:dataset-hub"),
        {"repo_id": "data/corpus", "revision": "main", "text_field": "body"},
        **HTMX,
    )
    failed = Dataset.objects.get(status="error")
    assert "has no column “body”" in failed.error_message and failed.encrypted_token is None
    assert not (settings.DATASETS_DIR / str(failed.pk)).exists()
    card = owner_client.get(reverse("models_app:dataset", args=[failed.pk]), **HTMX).content.decode()
    assert "has no column “body”" in card and "hx-trigger" not in card


def test_a_processing_dataset_card_refreshes_itself(owner_client):
    record = Dataset.objects.create(name="big", source="hub", source_detail="a/b@main", file_format="parquet")
    card = owner_client.get(reverse("models_app:dataset", args=[record.pk]), **HTMX).content.decode()
    assert 'hx-trigger="offline-poll"' in card and "waiting for a worker" in card
    Dataset.objects.filter(pk=record.pk).update(status="processing", progress_detail="Read 512 samples")
    card = owner_client.get(reverse("models_app:dataset", args=[record.pk]), **HTMX).content.decode()
    assert 'hx-trigger="offline-poll"' in card and "Read 512 samples" in card


def test_deleting_a_dataset_from_the_tab(owner_client):
    upload(owner_client, "notes.txt", "a\nb\n")
    record = Dataset.objects.get()
    html = owner_client.post(reverse("models_app:dataset-delete", args=[record.pk]), **HTMX).content.decode()
    assert "Deleted notes" in html and not Dataset.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_gated_hub_dataset_uses_the_token_without_keeping_it(owner_client, hub):
    from django_q.models import Task

    from tests.hubserver import GOOD_TOKEN

    html = owner_client.post(
        reverse("models_app:dataset-hub"),
        {"repo_id": "data/gated-corpus", "text_field": "text", "token": GOOD_TOKEN},
        **HTMX,
    ).content.decode()
    record = Dataset.objects.get()
    assert record.status == "ready" and record.encrypted_token is None and GOOD_TOKEN not in html
    auth = [h.get("authorization") for m, p, h in hub.requests if "gated-corpus/resolve" in p]
    assert auth and all(a == f"Bearer {GOOD_TOKEN}" for a in auth)
    assert all(GOOD_TOKEN not in repr(t.args) + repr(t.result) for t in Task.objects.all())
    owner_client.post(
        reverse("models_app:dataset-hub"), {"repo_id": "data/gated-corpus", "text_field": "text"}, **HTMX
    )
    failed = Dataset.objects.get(status="error")
    assert failed.error_message.startswith("data/gated-corpus is a gated dataset: accept its license")
