"""/api/v1/extractions: what a notebook does (start, wait, read the statistics, fetch the arrays,
look at a neuron's top examples), with the download, dataset and extraction jobs run for real."""

from __future__ import annotations

import io

import numpy as np
import pytest

from models_app.models import Extraction
from tests.extraction_files import engine_cancelled_at
from tests.web.owned import extraction_of

# Slow: most tests download a model and extract through the API's real jobs.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def start(api, model, dataset, **fields):
    body = {
        "model": model,
        "dataset": dataset,
        "layers": [0, 1],
        "hooks": ["residual", "mlp"],
        "batch_size": 4,
        "max_samples": 12,
        "context_length": 16,
        "top_k": 3,
        "dtype": "float32",
        **fields,
    }
    return api.post("/extractions", body)


def test_a_notebook_starts_an_extraction_and_reads_its_arrays(api, ready_ids, settings):
    response = start(api, *ready_ids)
    assert response.status_code == 202 and response.json()["status"] == "queued"
    record = api.get(f"/extractions/{response.json()['id']}").json()
    assert record["status"] == "completed" and record["samples_done"] == 12 and record["hidden_size"] == 128
    stats = record["statistics"]["layer_1_mlp"]
    assert stats["layer"] == 1 and stats["hook"] == "mlp" and stats["tokens"] > 0 and stats["mean_abs"] > 0
    files = {f["name"]: f for f in record["files"]}
    fetched = api.client.get(files["layer_1_mlp.npy"]["url"], **api.headers)
    array = np.load(io.BytesIO(b"".join(fetched.streaming_content)))
    assert array.shape == (12, 16, 128)
    path = settings.ACTIVATIONS_DIR / str(record["id"]) / "layer_1_mlp.npy"
    assert np.array_equal(array, np.load(path))
    assert files["layer_1_mlp.npy"]["size_bytes"] == path.stat().st_size


def test_it_gives_a_neurons_top_examples_and_the_strongest_neurons(api, ready_ids):
    record = start(api, *ready_ids).json()
    examples = api.get(
        f"/extractions/{record['id']}/examples", {"target": "layer_0_residual", "neuron": 5}
    ).json()
    assert len(examples["examples"]) == 3
    values = [e["value"] for e in examples["examples"]]
    assert values == sorted(values, reverse=True)
    assert all(sum(t["is_peak"] for t in e["tokens"]) == 1 for e in examples["examples"])
    strongest = api.get(f"/extractions/{record['id']}/examples", {"target": "layer_0_residual"}).json()
    assert len(strongest["strongest"]) == 20
    bad = api.get(f"/extractions/{record['id']}/examples", {"target": "layer_9_mlp", "neuron": 5})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "target"


def test_invalid_settings_are_refused_with_field_names(api, ready_ids):
    response = start(api, *ready_ids, layers=[0, 7], batch_size=0)
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"layers", "batch_size"}
    assert start(api, 999, ready_ids[1]).json()["errors"] == [{"field": "model", "message": "No such model."}]
    assert not Extraction.objects.exists()


def test_it_lists_with_filters(api, ready_ids):
    first = start(api, *ready_ids).json()
    start(api, *ready_ids, hooks=["attention"])
    listed = api.get("/extractions", {"hook": "attention"}).json()
    assert listed["count"] == 1 and listed["items"][0]["hooks"] == ["attention"]
    assert (
        api.get("/extractions", {"model": ready_ids[0], "sort": "oldest"}).json()["items"][0]["id"]
        == first["id"]
    )


def test_it_deletes_ones_own_extraction_and_its_files(api, ready_ids, settings):
    record = start(api, *ready_ids).json()
    response = api.delete(f"/extractions/{record['id']}")
    assert response.status_code == 200 and response.json()["freed_bytes"] > 0
    assert not (settings.ACTIVATIONS_DIR / str(record["id"])).exists()


def test_it_refuses_cancelling_or_deleting_someone_elses_extraction(api, other_user):
    record = extraction_of(other_user, status="extracting")
    assert api.post(f"/extractions/{record.pk}/cancel").status_code == 403
    assert api.delete(f"/extractions/{record.pk}").status_code == 403
    record.refresh_from_db()
    assert record.status == "extracting" and not record.cancel_requested


def test_a_file_it_did_not_write_is_not_served(api, alice):
    record = extraction_of(alice)
    assert api.get(f"/extractions/{record.pk}/files/..%2F..%2Fdb.sqlite3").status_code == 404


def test_numbers_of_any_size_are_refused_not_failed(api, alice):
    from tests.web.owned import dataset_of, model_of

    model = model_of(
        alice, architecture_config={"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64}
    )
    dataset = dataset_of(alice)
    for field in ("context_length", "batch_size", "top_k", "max_samples", "micro_batch_size"):
        response = start(api, model.pk, dataset.pk, **{field: 10**320})
        assert response.status_code == 422 and field in {e["field"] for e in response.json()["errors"]}, field
    assert not Extraction.objects.exists()


def test_it_documents_each_hook_value_with_its_label(api):
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    described = schemas["ExtractionIn"]["properties"]["hooks"]["description"]
    assert "residual (Residual Stream)" in described and "attention (Attention Output)" in described


def test_a_cancelled_extraction_says_where_a_retry_continues_and_the_retry_does(api, ready_ids):
    """The queue runs jobs inside the request here, so no second request can cancel one mid-run:
    the engine's cancel check stands in for it, answering yes once 8 of 12 samples are done."""
    with engine_cancelled_at(8):
        record = start(api, *ready_ids).json()
    detail = api.get(f"/extractions/{record['id']}").json()
    assert detail["status"] == "cancelled" and detail["resume_from_sample"] == 8
    assert detail["resumed_from_sample"] is None

    assert api.post(f"/extractions/{record['id']}/retry").status_code == 202
    detail = api.get(f"/extractions/{record['id']}").json()
    assert detail["status"] == "completed" and detail["samples_done"] == 12
    assert detail["resume_from_sample"] is None and detail["resumed_from_sample"] == 8
