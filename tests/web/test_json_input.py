"""JSON from users nested deeper than the studio reads, or holding a number int() refuses, is
refused with a message wherever it arrives: an imported file (page and API), the extra metadata
field, an API body. Nothing is written, and it is never a server error."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from models_app.models import ApiToken
from templates_app.models import ExtractionTemplate
from tests.helpers import HTMX

pytestmark = pytest.mark.django_db
BRACKETS = "[" * 100_000  # the parser's RecursionError, a server error, without the bound
DEEP = "[" * 101 + "]" * 101  # well-formed, one level past the bound
TOO_DEEP = "nests JSON deeper than 100 levels"


def nested(levels: int) -> dict:
    value: dict = {"leaf": True}
    for _ in range(levels - 1):
        value = {"inner": value}
    return value


def a_file(extra_metadata) -> str:
    template = {
        "name": "probe",
        "layer_indices": [0],
        "hook_types": ["mlp"],
        "extra_metadata": extra_metadata,
    }
    return json.dumps(
        {"version": "1.0", "export_date": "2025-03-01T10:00:00Z", "count": 1, "templates": [template]}
    )


def upload(client, text: str):
    file = SimpleUploadedFile("templates.json", text.encode(), "application/json")
    return client.post(reverse("templates_app:import"), {"file": file, "on_duplicate": "skip"}, **HTMX)


@pytest.fixture
def api(owner) -> Client:
    _record, token = ApiToken.issue(owner, "tests")
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.mark.parametrize(
    "text, message",
    [
        (BRACKETS, f"The file {TOO_DEEP}."),
        (DEEP, f"The file {TOO_DEEP}."),
        (a_file(nested(120)), f"The file {TOO_DEEP}."),
        (
            '{"version": "1.0", "count": ' + "9" * 5000 + ', "templates": []}',
            "The file holds a number too long to read (more than 4,300 digits).",
        ),
    ],
)
def test_an_imported_file_is_refused_with_the_reason(owner_client, text, message):
    response = upload(owner_client, text)
    assert response.status_code == 200 and message in response.content.decode()
    assert not ExtractionTemplate.objects.exists()


def test_metadata_nested_within_the_bound_imports(owner_client):
    response = upload(owner_client, a_file(nested(90)))
    assert "1 created" in response.content.decode()
    assert ExtractionTemplate.objects.get().extra_metadata == nested(90)


@pytest.mark.parametrize("metadata", [BRACKETS, json.dumps(nested(150))])
def test_the_metadata_field_says_it_nests_too_deep(owner_client, metadata):
    response = owner_client.post(
        reverse("templates_app:create"),
        {
            "name": "probe",
            "layer_indices": "0",
            "hook_types": ["mlp"],
            "batch_size": "8",
            "context_length": "128",
            "top_k_examples": "10",
            "dtype": "float16",
            "extra_metadata": metadata,
        },
    )
    html = response.content.decode()
    assert response.status_code == 422 and f"This value {TOO_DEEP}." in html
    assert not ExtractionTemplate.objects.exists()


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/v1/templates/import", BRACKETS),
        ("/api/v1/templates/import", a_file(nested(120))),
        (
            "/api/v1/templates",
            json.dumps(
                {"name": "probe", "layer_indices": [0], "hook_types": ["mlp"], "extra_metadata": nested(150)}
            ),
        ),
    ],
)
def test_an_api_body_is_refused_with_the_reason(api, path, body):
    response = api.post(path, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"] == f"The request body {TOO_DEEP}."
    assert not ExtractionTemplate.objects.exists()


def test_it_measures_a_megabyte_of_unclosed_escaped_quotes_in_one_pass():
    """Each string is matched once: trying an unclosed one again from every later quote took
    18 s for 80 KB (quadratic), holding the web process that long."""
    import time

    from models_app.json_input import nesting_depth

    began = time.monotonic()
    assert nesting_depth('"' + '\\"' * 500_000) == 0 and nesting_depth(b'["' + b'\\"' * 500_000) == 1
    assert time.monotonic() - began < 10  # a second here; the quadratic way, most of an hour
