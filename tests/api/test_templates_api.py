"""/api/v1/templates: the Templates tab for scripts, through the same TemplateForm."""

from __future__ import annotations

import pytest

from templates_app.models import ExtractionTemplate
from tests.web.owned import template_of

pytestmark = pytest.mark.django_db


def test_it_creates_a_template_with_defaults_for_what_is_left_out(api, alice):
    response = api.post(
        "/templates", {"name": "sweep", "layer_indices": "0, 2, 5-7", "hook_types": ["mlp", "residual"]}
    )
    body = response.json()
    assert response.status_code == 201 and body["layer_indices"] == [0, 2, 5, 6, 7]
    assert body["hook_types"] == ["residual", "mlp"] and body["batch_size"] == 8 and body["owner"] == "alice"


def test_invalid_settings_are_refused_with_field_names(api):
    response = api.post(
        "/templates",
        {
            "name": "bad",
            "layer_indices": "x",
            "hook_types": ["gate"],
            "batch_size": 8,
            "micro_batch_size": 16,
        },
    )
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {
        "layer_indices",
        "hook_types",
        "micro_batch_size",
    }
    assert not ExtractionTemplate.objects.exists()


def test_a_taken_name_is_refused(api, alice):
    template_of(alice, name="Sweep")
    response = api.post("/templates", {"name": "sweep", "layer_indices": [0], "hook_types": ["mlp"]})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "name"


def test_it_changes_only_what_is_sent(api, alice):
    record = template_of(alice, batch_size=16, description="kept")
    response = api.patch(f"/templates/{record.pk}", {"batch_size": 32})
    assert response.status_code == 200 and response.json()["batch_size"] == 32
    record.refresh_from_db()
    assert record.description == "kept" and record.layer_indices == [0]


def test_it_stars_copies_and_deletes(api, alice, other_user):
    theirs = template_of(other_user, name="theirs")
    assert api.post(f"/templates/{theirs.pk}/favorite").status_code == 403
    copy = api.post(f"/templates/{theirs.pk}/duplicate").json()
    assert copy["name"] == "Copy of theirs" and copy["owner"] == "alice"
    assert api.post(f"/templates/{copy['id']}/favorite").json()["is_favorite"] is True
    assert api.delete(f"/templates/{theirs.pk}").status_code == 403
    assert api.delete(f"/templates/{copy['id']}").status_code == 204
    assert list(ExtractionTemplate.objects.values_list("name", flat=True)) == ["theirs"]


def test_it_lists_with_search_and_favorites(api, alice):
    template_of(alice, name="alpha", is_favorite=True)
    template_of(alice, name="beta", description="alpha-like")
    template_of(alice, name="gamma")
    assert [t["name"] for t in api.get("/templates", {"q": "alpha"}).json()["items"]] == ["alpha", "beta"]
    assert [t["name"] for t in api.get("/templates", {"favorites": "true"}).json()["items"]] == ["alpha"]


def test_an_export_imports_back(api, alice):
    template_of(alice, name="one", batch_size=12)
    exported = api.get("/templates/export").json()
    assert exported["count"] == 1 and exported["templates"][0]["batch_size"] == 12
    ExtractionTemplate.objects.all().delete()
    summary = api.post("/templates/import", exported).json()
    assert [c["name"] for c in summary["created"]] == ["one"]
    assert (
        ExtractionTemplate.objects.get().batch_size == 12 and ExtractionTemplate.objects.get().owner == alice
    )


def test_an_import_does_not_overwrite_someone_elses_template(api, other_user):
    theirs = template_of(other_user, name="shared", batch_size=4)
    payload = {
        "version": "1.0",
        "templates": [{"name": "shared", "layer_indices": [0], "hook_types": ["mlp"], "batch_size": 64}],
    }
    summary = api.client.post(
        "/api/v1/templates/import?on_duplicate=overwrite",
        payload,
        content_type="application/json",
        **api.headers,
    ).json()
    assert summary["skipped"][0]["note"] == "a template with this name belongs to someone else"
    theirs.refresh_from_db()
    assert theirs.batch_size == 4


def test_an_invalid_import_writes_nothing(api):
    payload = {
        "version": "1.0",
        "templates": [
            {"name": "ok", "layer_indices": [0], "hook_types": ["mlp"]},
            {"name": "bad", "layer_indices": [0], "hook_types": ["gate"]},
        ],
    }
    response = api.post("/templates/import", payload)
    assert response.status_code == 422 and "template 2" in response.json()["errors"][0]["message"].lower()
    assert not ExtractionTemplate.objects.exists()


@pytest.mark.parametrize(
    "metadata, message",
    [
        ('{"x": NaN}', "finite"),
        ('{"x": [Infinity]}', "finite"),
        ('{"x\\u0000": 1}', "NUL"),
        ('{"x": {"y": "a\\u0000"}}', "NUL"),
    ],
)
def test_metadata_every_database_can_store_is_required(api, metadata, message):
    body = '{"name": "t", "layer_indices": [0], "hook_types": ["mlp"], "extra_metadata": ' + metadata + "}"
    response = api.client.post("/api/v1/templates", body, content_type="application/json", **api.headers)
    assert response.status_code == 422 and message in response.json()["errors"][0]["message"]
    assert not ExtractionTemplate.objects.exists()


def test_a_large_templates_file_imports_and_a_too_large_body_is_refused_as_json(api):
    import json

    big = {
        "version": "1.0",
        "templates": [
            {
                "name": "big",
                "layer_indices": [0],
                "hook_types": ["mlp"],
                "description": "x" * (4 * 1024 * 1024),
            }
        ],
    }
    assert api.post("/templates/import", big).json()["created"][0]["name"] == "big"
    huge = api.client.post(
        "/api/v1/templates/import",
        json.dumps({"pad": "x" * (7 * 1024 * 1024)}),
        content_type="application/json",
        **api.headers,
    )
    assert huge.status_code == 413 and huge.json()["detail"] == "The request body is too large."
