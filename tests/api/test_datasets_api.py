"""/api/v1/datasets: upload a file, add from the Hub, read, delete."""

from __future__ import annotations

import pytest

from models_app.models import Dataset
from tests.web.owned import dataset_of, extraction_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_reads_an_uploaded_file(api, alice, tmp_path):
    corpus = tmp_path / "notes.jsonl"
    corpus.write_text('{"body": "first"}\n{"body": "second"}\n')
    with corpus.open("rb") as upload:
        response = api.post("/datasets/upload", data={"file": upload, "name": "notes", "text_field": "body"})
    body = response.json()
    assert response.status_code == 201 and body["num_samples"] == 2 and body["preview"] == ["first", "second"]
    assert Dataset.objects.get().owner == alice


def test_a_bad_file_is_refused_at_its_field_and_leaves_nothing(api, tmp_path):
    corpus = tmp_path / "broken.json"
    corpus.write_bytes(b'[{"text": "\xff\xfe"}]')
    with corpus.open("rb") as upload:
        response = api.post("/datasets/upload", data={"file": upload})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "file"
    assert not Dataset.objects.exists()


def test_it_names_the_text_field_when_the_file_lacks_that_column(api, tmp_path):
    corpus = tmp_path / "notes.csv"
    corpus.write_text("body\nfirst\n")
    with corpus.open("rb") as upload:
        response = api.post("/datasets/upload", data={"file": upload, "text_field": "text"})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "text_field", "message": "The CSV has no column “text” (it has: body)."}
    ]
    assert not Dataset.objects.exists()


def test_it_adds_a_hub_dataset(api, hub):
    response = api.post("/datasets/hub", {"repo_id": "data/corpus", "files": "data/*.parquet"})
    assert response.status_code == 202
    got = api.get(f"/datasets/{response.json()['id']}").json()
    assert got["status"] == "ready" and got["num_samples"] > 0 and got["source"] == "hub"


def test_an_unknown_hub_dataset_is_refused(api, hub):
    response = api.post("/datasets/hub", {"repo_id": "data/missing"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "repo_id"
    assert not Dataset.objects.exists()


def test_it_lists_and_deletes(api, alice, other_user):
    mine, theirs = dataset_of(alice, name="mine"), dataset_of(other_user, name="theirs")
    assert [d["name"] for d in api.get("/datasets").json()["items"]] == ["theirs", "mine"]
    assert api.delete(f"/datasets/{theirs.pk}").status_code == 403
    assert api.delete(f"/datasets/{mine.pk}").status_code == 200
    assert list(Dataset.objects.values_list("name", flat=True)) == ["theirs"]


def test_a_dataset_in_use_is_not_deleted(api, alice):
    extraction = extraction_of(alice)
    response = api.delete(f"/datasets/{extraction.dataset_id}")
    assert response.status_code == 409 and Dataset.objects.filter(pk=extraction.dataset_id).exists()
