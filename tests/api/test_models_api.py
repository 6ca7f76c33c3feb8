"""/api/v1/models against the local Hub server, with the download job run for real."""

from __future__ import annotations

import pytest

from models_app.models import LanguageModel
from tests.web.owned import model_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_previews_a_repository_before_downloading(api, hub):
    response = api.post("/models/preview", {"repo_id": "tiny/llama"})
    body = response.json()
    assert response.status_code == 200 and body["architecture"] == "llama"
    assert (
        body["params_count"] > 0
        and body["download_bytes"] > 0
        and set(body["memory_by_format"]) >= {"fp16", "q4"}
    )
    assert not LanguageModel.objects.exists()


def test_it_starts_a_download_and_the_job_makes_it_ready(api, hub, alice):
    response = api.post("/models", {"repo_id": "tiny/llama", "quantization": "fp16"})
    assert response.status_code == 202 and response.json()["owner"] == "alice"
    got = api.get(f"/models/{response.json()['id']}").json()
    assert got["status"] == "ready" and got["effective_quantization"] == "fp16" and got["disk_size_bytes"] > 0
    assert LanguageModel.objects.get().owner == alice


def test_it_answers_invalid_input_with_field_names(api, hub):
    response = api.post("/models", {"repo_id": "no spaces/allowed here", "revision": "/abs/path"})
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"repo_id", "revision"} and not LanguageModel.objects.exists()


def test_it_answers_schema_errors_in_the_same_shape(api):
    response = api.post("/models", {"repo_id": 5, "quantization": "q3"})
    assert response.status_code == 422
    assert "quantization" in {error["field"] for error in response.json()["errors"]}


def test_a_second_download_of_the_same_model_is_refused(api, hub):
    api.post("/models", {"repo_id": "tiny/llama", "quantization": "fp16"})
    response = api.post("/models", {"repo_id": "tiny/llama", "quantization": "fp16"})
    assert response.status_code == 422 and "Already downloaded" in response.json()["errors"][0]["message"]
    assert LanguageModel.objects.count() == 1


def test_it_lists_with_filters_and_pages(api, alice):
    for i in range(30):
        model_of(alice, name=f"model-{i}", repo_id=f"tiny/m{i}", quantization="q4" if i % 2 else "fp16")
    first = api.get("/models", {"page_size": 10, "sort": "name"}).json()
    assert first["count"] == 30 and first["pages"] == 3 and len(first["items"]) == 10
    filtered = api.get("/models", {"quantization": "fp16", "q": "model-1"}).json()
    assert {item["name"] for item in filtered["items"]} == {
        "model-10",
        "model-12",
        "model-14",
        "model-16",
        "model-18",
    }
    assert api.get("/models", {"status": "bogus"}).status_code == 422


def test_it_renames_ones_own_model(api, alice):
    record = model_of(alice)
    response = api.patch(f"/models/{record.pk}", {"name": "renamed"})
    assert response.status_code == 200 and response.json()["name"] == "renamed"
    assert api.patch(f"/models/{record.pk}", {"name": "  "}).json()["errors"][0]["field"] == "name"


def test_it_refuses_changing_someone_elses_model(api, other_user):
    record = model_of(other_user)
    for response in (
        api.patch(f"/models/{record.pk}", {"name": "mine"}),
        api.delete(f"/models/{record.pk}"),
        api.post(f"/models/{record.pk}/cancel"),
        api.post(f"/models/{record.pk}/retry", {}),
    ):
        assert response.status_code == 403 and "Only other" in response.json()["detail"]
    record.refresh_from_db()
    assert record.name == "llama"


def test_cancelling_a_finished_download_is_a_conflict(api, alice):
    record = model_of(alice)
    response = api.post(f"/models/{record.pk}/cancel")
    assert response.status_code == 409 and "already ended" in response.json()["detail"]


@pytest.mark.slow
def test_it_retries_a_failed_download_and_deletes_a_model(api, hub, alice):
    created = api.post("/models", {"repo_id": "tiny/llama", "quantization": "fp16"}).json()
    LanguageModel.objects.filter(pk=created["id"]).update(status="error", error_message="boom")
    retried = api.post(f"/models/{created['id']}/retry", {})
    assert retried.status_code == 202 and api.get(f"/models/{created['id']}").json()["status"] == "ready"
    architecture = api.get(f"/models/{created['id']}/architecture").json()
    assert architecture["summary"]["layers"] and architecture["config"]["model_type"] == "llama"
    deleted = api.delete(f"/models/{created['id']}")
    assert deleted.status_code == 200 and deleted.json()["freed_bytes"] > 0
    assert api.get(f"/models/{created['id']}").status_code == 404
