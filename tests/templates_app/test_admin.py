from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from templates_app.models import ExtractionTemplate
from tests.templates_app.original_export import ORIGINAL_EXPORT

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/templates_app/extractiontemplate/"
IMPORT = CHANGELIST + "import/"


def names(html: str) -> list[str]:
    return re.findall(r'<th class="field-name"><a href="[^"]+">([^<]*)</a></th>', html)


def test_the_changelist_lists_searches_and_filters(admin_client, make_template):
    make_template("alpha", description="early", layer_indices=[0, 1, 2], hook_types=["residual", "mlp"])
    make_template("beta", description="late", is_favorite=True, dtype="float32")
    html = admin_client.get(CHANGELIST).content.decode()
    assert (
        sorted(names(html)) == ["alpha", "beta"] and "0-2" in html and "Residual Stream, MLP Output" in html
    )
    assert f'href="{IMPORT}"' in html and "Export selected as JSON" in html
    assert names(admin_client.get(CHANGELIST, {"q": "late"}).content.decode()) == ["beta"]
    assert names(admin_client.get(CHANGELIST, {"is_favorite__exact": "1"}).content.decode()) == ["beta"]
    assert names(admin_client.get(CHANGELIST, {"dtype__exact": "float16"}).content.decode()) == ["alpha"]


def test_the_favorite_box_is_editable_in_the_list(admin_client, make_template):
    a, b = make_template("a"), make_template("b", is_favorite=True)
    data = {
        "form-TOTAL_FORMS": "2",
        "form-INITIAL_FORMS": "2",
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "form-0-id": str(a.pk),
        "form-0-is_favorite": "on",
        "form-1-id": str(b.pk),
        "_save": "Save",
    }
    response = admin_client.post(CHANGELIST, data)
    assert response.status_code == 302
    a.refresh_from_db(), b.refresh_from_db()
    assert (a.is_favorite, b.is_favorite) == (True, False)


def test_the_export_action_returns_the_selected_templates(admin_client, make_template):
    a, _ = make_template("a"), make_template("b")
    response = admin_client.post(CHANGELIST, {"action": "export_selected", "_selected_action": [a.pk]})
    assert response["Content-Disposition"].startswith('attachment; filename="extraction_templates_')
    data = json.loads(response.content)
    assert data["version"] == "1.0" and [t["name"] for t in data["templates"]] == ["a"]


def test_the_import_page_imports_and_reports_the_summary(admin_client, make_template):
    make_template("MLP probe", batch_size=4)
    assert "When a template with the same name exists" in admin_client.get(IMPORT).content.decode()
    upload = SimpleUploadedFile("t.json", json.dumps(ORIGINAL_EXPORT).encode())
    response = admin_client.post(IMPORT, {"file": upload, "on_duplicate": "rename"}, follow=True)
    assert response.redirect_chain[-1][0] == CHANGELIST
    html = response.content.decode()
    assert "Imported: 2 created, 0 updated, 0 skipped." in html
    assert "Created: template 2 (&#x27;MLP probe (2)&#x27;): renamed from &#x27;MLP probe&#x27;" in html
    assert ExtractionTemplate.objects.count() == 3


def test_the_import_page_lists_every_problem_of_a_refused_file(admin_client):
    bad = {
        "version": "1.0",
        "templates": [{"name": "x", "layer_indices": "a", "hook_types": ["mlp"], "dtype": "int8"}],
    }
    response = admin_client.post(
        IMPORT, {"file": SimpleUploadedFile("t.json", json.dumps(bad).encode()), "on_duplicate": "skip"}
    )
    html = response.content.decode()
    assert response.status_code == 200 and "Nothing was imported: 2 problems." in html
    assert "template 1 (&#x27;x&#x27;): layer_indices: “a” is not a layer index" in html
    assert "template 1 (&#x27;x&#x27;): dtype: choose float16 or float32" in html
    assert not ExtractionTemplate.objects.exists()


def test_the_import_page_needs_permission(client, owner):
    client.force_login(owner)  # staff, but without model permissions
    assert client.get(IMPORT).status_code == 403


def test_the_add_form_validates_like_the_tab(admin_client):
    data = {
        "name": "from admin",
        "description": "",
        "layer_indices": "0, 2, 5-7",
        "hook_types": ["mlp"],
        "max_samples": "",
        "batch_size": "8",
        "micro_batch_size": "",
        "context_length": "128",
        "top_k_examples": "10",
        "context_prefix_tokens": "25",
        "context_suffix_tokens": "25",
        "dtype": "float16",
        "extra_metadata": "{}",
    }
    assert admin_client.post(CHANGELIST + "add/", data).status_code == 302
    assert ExtractionTemplate.objects.get().layer_indices == [0, 2, 5, 6, 7]
    html = admin_client.post(CHANGELIST + "add/", {**data, "name": "FROM ADMIN"}).content.decode()
    assert "A template named “from admin” already exists; choose another name." in html
