from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from templates_app.models import ExtractionTemplate
from tests.helpers import HTMX
from tests.templates_app.original_export import ORIGINAL_EXPORT

pytestmark = pytest.mark.django_db

EXPORT = reverse("templates_app:export")
IMPORT = reverse("templates_app:import")


def upload(client, content, policy="skip", name="templates.json", **extra):
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    return client.post(
        IMPORT, {"file": SimpleUploadedFile(name, raw, "application/json"), "on_duplicate": policy}, **extra
    )


def test_it_exports_all_templates_as_a_dated_download(owner_client, make_template):
    make_template("a")
    make_template("b")
    response = owner_client.get(EXPORT, {"scope": "all"})
    assert response["Content-Type"] == "application/json"
    assert re.fullmatch(
        r'attachment; filename="extraction_templates_\d{8}_\d{6}\.json"', response["Content-Disposition"]
    )
    data = json.loads(response.content)
    assert data["count"] == 2 and [t["name"] for t in data["templates"]] == ["a", "b"]


def test_it_exports_only_the_ticked_templates(owner_client, make_template):
    a, _, c = make_template("a"), make_template("b"), make_template("c")
    page = owner_client.get(reverse("templates_app:index")).content.decode()
    assert f'name="ids" value="{a.pk}" form="export-form"' in page and 'id="export-form"' in page
    data = json.loads(owner_client.get(EXPORT, {"scope": "selected", "ids": [a.pk, c.pk]}).content)
    assert [t["name"] for t in data["templates"]] == ["a", "c"]


def test_export_selected_with_nothing_ticked_says_so(owner_client, make_template):
    make_template("a")
    response = owner_client.get(EXPORT, {"scope": "selected"}, follow=True)
    assert "Tick the templates to export first, or choose Export all." in response.content.decode()


def test_it_imports_a_file_and_shows_the_summary_in_the_page(owner_client, make_template):
    make_template("MLP probe", batch_size=4)
    response = upload(owner_client, ORIGINAL_EXPORT, "skip", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and response["HX-Trigger"] == "templates-changed"
    assert html.lstrip().startswith('<form id="import-form"') and 'id="import-summary"' in html
    assert "1 created, 0 updated, 1 skipped" in html
    assert "Created: template 1 (&#x27;Residual sweep&#x27;)" in html
    assert "Skipped: template 2 (&#x27;MLP probe&#x27;): a template with this name exists" in html
    assert ExtractionTemplate.objects.get(name="MLP probe").batch_size == 4


@pytest.mark.parametrize(
    "policy, names, batch",
    [
        ("overwrite", ["MLP probe", "Residual sweep"], 8),
        ("rename", ["MLP probe", "MLP probe (2)", "Residual sweep"], 4),
    ],
)
def test_it_applies_the_chosen_policy(owner_client, make_template, policy, names, batch):
    make_template("MLP probe", batch_size=4)
    html = upload(owner_client, ORIGINAL_EXPORT, policy, **HTMX).content.decode()
    assert re.search(rf'value="{policy}"[^>]*checked', html)  # the policy stays chosen for the next file
    assert sorted(ExtractionTemplate.objects.values_list("name", flat=True)) == names
    assert ExtractionTemplate.objects.get(name="MLP probe").batch_size == batch


def test_a_refused_file_lists_every_problem_and_imports_nothing(owner_client):
    bad = {
        "version": "1.0",
        "templates": [
            {"name": "ok", "layer_indices": [0], "hook_types": ["mlp"]},
            {"name": "<i>bad</i>", "layer_indices": [0], "hook_types": ["mlp"], "batch_size": 0, "shape": 1},
        ],
    }
    response = upload(owner_client, bad, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="import-refusal"' in html and "2 problems" in html
    assert "template 2 (&#x27;&lt;i&gt;bad&lt;/i&gt;&#x27;): unknown field &#x27;shape&#x27;" in html
    assert "template 2 (&#x27;&lt;i&gt;bad&lt;/i&gt;&#x27;): batch_size: must be between 1 and 512" in html
    assert "HX-Trigger" not in response and not ExtractionTemplate.objects.exists()


def test_malformed_json_is_refused_with_its_place(owner_client):
    html = upload(owner_client, b'{"version": "1.0", "templates": [}', **HTMX).content.decode()
    assert "The file is not valid JSON: Expecting value at line 1, column 34." in html


def test_without_htmx_the_page_shows_the_result(owner_client):
    response = upload(owner_client, ORIGINAL_EXPORT)
    assert (
        response.status_code == 200
        and "<html" in response.content.decode()
        and "2 created" in response.content.decode()
    )
    refused = upload(owner_client, {"version": "9"})
    assert refused.status_code == 422 and "this studio reads version 1.0 files" in refused.content.decode()


def test_it_asks_for_a_file_and_refuses_oversized_ones(owner_client, monkeypatch):
    html = owner_client.post(IMPORT, {"on_duplicate": "skip"}, **HTMX).content.decode()
    assert "Choose a JSON file to import." in html and 'id="error-import-file"' in html
    monkeypatch.setattr("templates_app.forms.MAX_IMPORT_BYTES", 100)
    html = upload(owner_client, ORIGINAL_EXPORT, **HTMX).content.decode()
    assert "templates are imported from files of at most 0 MB" in html and 'id="error-import-file"' in html
    monkeypatch.setattr("templates_app.views.import_export.MAX_IMPORT_BYTES", 100)
    html = upload(owner_client, b"x" * 70_000, **HTMX).content.decode()
    assert 'id="import-refusal"' in html and "templates are imported from files of at most" in html
    assert not ExtractionTemplate.objects.exists()
