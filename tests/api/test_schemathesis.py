"""Schemathesis against the live server: generated requests to every operation of the OpenAPI
document (valid, boundary and invalid input) meet no server error, and every answer matches
the document (status codes, content types, headers and bodies). Path parameters often name real
records (a completed extraction with its files, its model and dataset, an export of it, a
template), so the requests reach the code behind the lookups; deletes get generated ids only,
so the records stay for the other operations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from models_app.models import ApiToken
from tests.web.owned import template_of

# Slow: Schemathesis runs for minutes against the live server.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = """
[dictionaries]
models = {{ values = [{model}] }}
datasets = {{ values = [{dataset}] }}
extractions = {{ values = [{extraction}] }}
templates = {{ values = [{template}] }}
exports = {{ values = [{export}] }}
files = {{ values = [
    "layer_0_residual.npy", "metadata.json", "topk_layer_1_mlp.npz", "../metadata.json", "manifest.json"
] }}
targets = {{ values = ["layer_0_residual", "layer_1_mlp"] }}

[[operations]]
include-method-regex = "GET|POST|PATCH"

[operations.parameters]
"path.model_id" = {{ dictionary = "models", probability = 0.6 }}
"path.dataset_id" = {{ dictionary = "datasets", probability = 0.6 }}
"path.extraction_id" = {{ dictionary = "extractions", probability = 0.6 }}
"path.template_id" = {{ dictionary = "templates", probability = 0.6 }}
"path.export_id" = {{ dictionary = "exports", probability = 0.6 }}
"path.name" = {{ dictionary = "files", probability = 0.6 }}
"query.target" = {{ dictionary = "targets", probability = 0.6 }}
"""


def test_generated_requests_meet_no_server_error_and_match_the_document(
    live_server, api, ready_ids, alice, tmp_path
):
    model, dataset = ready_ids
    extraction = api.post(
        "/extractions",
        {
            "model": model,
            "dataset": dataset,
            "layers": [0, 1],
            "hooks": ["residual", "mlp"],
            "max_samples": 8,
            "context_length": 16,
            "top_k": 3,
        },
    ).json()["id"]
    assert api.get(f"/extractions/{extraction}").json()["status"] == "completed"
    export = api.post(f"/extractions/{extraction}/exports", {"format": "tokens"}).json()["id"]
    assert api.get(f"/exports/{export}").json()["status"] == "completed"
    template = template_of(alice).pk
    (tmp_path / "schemathesis.toml").write_text(
        CONFIG.format(model=model, dataset=dataset, extraction=extraction, template=template, export=export)
    )
    _record, token = ApiToken.issue(alice, "schemathesis")
    run = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{live_server.url}/api/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "30",
            "--seed",
            "7",
            "--workers",  # two requests at a time: the server works while the client generates
            "2",
            "--generation-database",
            "none",
            "--no-color",
            "--request-timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    # Every operation of the document, none skipped: a new endpoint adds one here.
    assert "Tested: 49" in run.stdout and " failed" not in run.stdout, run.stdout[-3000:]
