from __future__ import annotations

import pytest
from django.urls import reverse

from templates_app.models import ExtractionTemplate
from tests.helpers import HTMX

pytestmark = pytest.mark.django_db

CREATE = reverse("templates_app:create")
FORM = {
    "name": "Residual sweep",
    "description": "",
    "layer_indices": "0, 2, 5-7",
    "hook_types": ["residual", "mlp"],
    "max_samples": "1000",
    "batch_size": "16",
    "micro_batch_size": "",
    "context_length": "128",
    "top_k_examples": "10",
    "context_prefix_tokens": "25",
    "context_suffix_tokens": "25",
    "dtype": "float16",
    "extra_metadata": '{"note": "first"}',
}


def errors_of(html: str, field: str) -> str:
    return html.split(f'id="error-{field}">')[1].split("</div>")[0]


def test_it_creates_a_template_from_the_form(owner_client):
    response = owner_client.post(CREATE, FORM, **HTMX)
    template = ExtractionTemplate.objects.get()
    assert (
        template.name,
        template.layer_indices,
        template.hook_types,
        template.max_samples,
        template.batch_size,
        template.extra_metadata,
    ) == ("Residual sweep", [0, 2, 5, 6, 7], ["residual", "mlp"], 1000, 16, {"note": "first"})
    html = response.content.decode()
    assert response.status_code == 200 and response["HX-Trigger"] == "templates-changed"
    assert 'id="template-form"' in html and "Saved “Residual sweep”." in html and "<html" not in html
    assert 'value="Residual sweep"' not in html  # a fresh form for the next one


def test_it_creates_without_htmx_and_redirects(owner_client):
    response = owner_client.post(CREATE, FORM, follow=True)
    assert response.redirect_chain == [(reverse("templates_app:index"), 302)]
    assert "Saved template “Residual sweep”." in response.content.decode()
    assert ExtractionTemplate.objects.count() == 1


def test_it_shows_each_error_under_its_field_and_saves_nothing(owner_client, make_template):
    make_template("taken")
    bad = {
        **FORM,
        "name": "TAKEN",
        "layer_indices": "1, x",
        "hook_types": [],
        "batch_size": "600",
        "extra_metadata": "[]",
    }
    response = owner_client.post(CREATE, bad, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="template-form"' in html and "<html" not in html
    assert "A template named “taken” already exists" in errors_of(html, "name")
    assert "“x” is not a layer index" in errors_of(html, "layer_indices")
    assert "Choose at least one hook type." in errors_of(html, "hook_types")
    assert "Must be between 1 and 512." in errors_of(html, "batch_size")
    assert "Must be a JSON object" in errors_of(html, "extra_metadata")
    assert errors_of(html, "context_length").strip() == ""
    assert 'value="1, x"' in html  # what the user typed stays for them to fix
    assert ExtractionTemplate.objects.count() == 1


def test_an_invalid_post_without_htmx_renders_the_page_with_422(owner_client):
    response = owner_client.post(CREATE, {**FORM, "batch_size": "0"})
    assert response.status_code == 422 and "<html" in response.content.decode()
    assert "Must be between 1 and 512." in errors_of(response.content.decode(), "batch_size")


def test_it_validates_one_field_as_it_changes_without_saving(owner_client):
    html = owner_client.get(reverse("templates_app:index")).content.decode()
    assert 'hx-trigger="change"' in html and '"X-Validate-Field": "batch_size"' in html
    response = owner_client.post(
        CREATE,
        {**FORM, "batch_size": "0", "micro_batch_size": "x"},
        HTTP_X_VALIDATE_FIELD="batch_size",
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200 and html.startswith('<div class="field-errors" id="error-batch_size">')
    assert "Must be between 1 and 512." in html and "whole number" not in html
    ok = owner_client.post(CREATE, FORM, HTTP_X_VALIDATE_FIELD="name", **HTMX).content.decode()
    assert ok == '<div class="field-errors" id="error-name"></div>'
    assert owner_client.post(CREATE, FORM, HTTP_X_VALIDATE_FIELD="nope", **HTMX).status_code == 400
    assert not ExtractionTemplate.objects.exists()


def test_it_edits_a_template_and_swaps_its_card(owner_client, make_template):
    template = make_template("old", layer_indices=[0, 1, 2, 3], batch_size=8)
    form = owner_client.get(reverse("templates_app:edit", args=[template.pk]), **HTMX).content.decode()
    assert (
        "Edit “old”" in form and 'value="0-3"' in form and f'action="/templates/{template.pk}/edit/"' in form
    )
    response = owner_client.post(
        reverse("templates_app:edit", args=[template.pk]), {**FORM, "name": "new", "batch_size": "32"}, **HTMX
    )
    template.refresh_from_db()
    assert (template.name, template.batch_size, template.layer_indices) == ("new", 32, [0, 2, 5, 6, 7])
    html = response.content.decode()
    assert f'id="template-{template.pk}" class="card template-card" hx-swap-oob="true"' in html
    assert "New template" in html  # the panel goes back to creating


def test_an_invalid_edit_keeps_the_heading_and_the_record(owner_client, make_template):
    template = make_template("old")
    html = owner_client.post(
        reverse("templates_app:edit", args=[template.pk]), {**FORM, "name": " "}, **HTMX
    ).content.decode()
    assert "Edit “old”" in html and "Give the template a name." in errors_of(html, "name")
    template.refresh_from_db()
    assert template.name == "old"


def test_it_duplicates_with_copy_of_names_and_opens_the_copy(owner_client, make_template):
    template = make_template("Sweep", batch_size=64)
    url = reverse("templates_app:duplicate", args=[template.pk])
    response = owner_client.post(url, **HTMX)
    copy = ExtractionTemplate.objects.get(name="Copy of Sweep")
    html = response.content.decode()
    assert copy.batch_size == 64 and response["HX-Trigger"] == "templates-changed"
    assert "Edit “Copy of Sweep”" in html and f'action="/templates/{copy.pk}/edit/"' in html
    owner_client.post(url, **HTMX)
    owner_client.post(url)
    assert sorted(ExtractionTemplate.objects.values_list("name", flat=True)) == [
        "Copy of Sweep",
        "Copy of Sweep (2)",
        "Copy of Sweep (3)",
        "Sweep",
    ]


def test_it_deletes_after_a_confirmation_naming_the_template(owner_client, make_template):
    template = make_template("Doomed <b>")
    page = owner_client.get(reverse("templates_app:index")).content.decode()
    assert 'hx-confirm="Delete the template “Doomed &lt;b&gt;”?"' in page
    response = owner_client.post(reverse("templates_app:delete", args=[template.pk]), **HTMX)
    html = response.content.decode()
    assert not ExtractionTemplate.objects.exists() and response["HX-Trigger"] == "templates-changed"
    assert "Deleted the template “Doomed &lt;b&gt;”." in html and 'hx-swap-oob="beforeend:#toasts"' in html
    assert "<article" not in html  # the card's place is swapped with nothing


def test_the_star_toggles_a_favorite_and_swaps_the_card(owner_client, make_template):
    template = make_template("star me")
    url = reverse("templates_app:favorite", args=[template.pk])
    html = owner_client.post(url, **HTMX).content.decode()
    assert ExtractionTemplate.objects.get().is_favorite is True
    assert html.lstrip().startswith(
        f'<article id="template-{template.pk}" class="card template-card is-favorite"'
    )
    assert 'aria-pressed="true"' in html and "★" in html
    assert owner_client.post(url).status_code == 302
    assert ExtractionTemplate.objects.get().is_favorite is False


def test_without_htmx_edit_and_duplicate_use_whole_pages(owner_client, make_template):
    template = make_template("plain")
    page = owner_client.get(reverse("templates_app:edit", args=[template.pk])).content.decode()
    assert "<html" in page and "Edit “plain”" in page and f'id="template-{template.pk}"' in page
    response = owner_client.post(reverse("templates_app:duplicate", args=[template.pk]), follow=True)
    copy = ExtractionTemplate.objects.get(name="Copy of plain")
    assert response.redirect_chain == [(reverse("templates_app:edit", args=[copy.pk]), 302)]
    assert (
        "Edit “Copy of plain”" in response.content.decode()
        and "Created “Copy of plain”." in response.content.decode()
    )
    assert owner_client.post(reverse("templates_app:delete", args=[copy.pk])).status_code == 302
    assert list(ExtractionTemplate.objects.values_list("name", flat=True)) == ["plain"]
