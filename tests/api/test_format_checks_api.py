"""/api/v1/models/{id}/format-checks and /api/v1/format-checks/{id}: what a script does with a
format check (alice's tiny Llama in FP16 and Q4, through the API with their jobs run for real)."""

from __future__ import annotations

import pytest

from models_app.models import FormatCheck

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_script_checks_the_formats_follows_and_reads_the_result(api, ready_ids):
    fp16_id, dataset_id = ready_ids
    q4 = api.post("/models", {"repo_id": "tiny/llama", "quantization": "q4"}).json()
    started = api.post(
        f"/models/{q4['id']}/format-checks", {"dataset": dataset_id, "samples": 6, "context_length": 16}
    )
    assert started.status_code == 202, started.json()
    body = api.get(f"/format-checks/{started.json()['id']}").json()
    assert (body["status"], body["model"], body["models"], body["owner"]) == (
        "completed",
        q4["id"],
        [fp16_id, q4["id"]],
        "alice",
    )
    result = body["result"]
    assert result["reference"]["format"] == "fp16" and [f["format"] for f in result["formats"]] == ["q4"]
    assert set(result["formats"][0]["kl"]) == {"mean", "median", "p99", "max"}
    assert [c["id"] for c in api.get(f"/models/{q4['id']}/format-checks").json()] == [body["id"]]
    assert api.post(f"/format-checks/{body['id']}/cancel").status_code == 409  # it has ended
    assert api.delete(f"/format-checks/{body['id']}").status_code == 204
    assert not FormatCheck.objects.exists()


def test_one_format_alone_is_refused_with_what_to_do(api, ready_ids):
    fp16_id, dataset_id = ready_ids
    refused = api.post(f"/models/{fp16_id}/format-checks", {"dataset": dataset_id})
    assert refused.status_code == 422
    (error,) = refused.json()["errors"]
    assert "ready in FP16 only: download it in another format" in error["message"]
    missing = api.post(f"/models/{fp16_id}/format-checks", {"dataset": 999})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "dataset"
    assert not FormatCheck.objects.exists()
