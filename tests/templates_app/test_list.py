from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from templates_app.models import ExtractionTemplate
from tests.helpers import HTMX

pytestmark = pytest.mark.django_db

INDEX = reverse("templates_app:index")
LIST = {**HTMX, "HTTP_HX_TARGET": "template-list"}


def names(html: str) -> list[str]:
    import re

    return re.findall(r'<h3 class="card-title">(.*?)</h3>', html)


def test_it_shows_the_tab_with_an_empty_state(owner_client):
    html = owner_client.get(INDEX).content.decode()
    assert "No templates yet." in html and 'id="template-form"' in html and 'id="import-form"' in html
    assert 'class="tab active">Templates</a>' in html


def test_it_lists_each_template_with_its_settings(owner_client, make_template):
    template = make_template(
        "Residual sweep",
        description="every fourth layer",
        layer_indices=[0, 4, 5, 6, 8],
        hook_types=["residual", "mlp"],
        max_samples=None,
        batch_size=32,
        micro_batch_size=8,
        context_length=256,
        top_k_examples=20,
        dtype="float32",
        extra_metadata={"k": "v"},
    )
    html = owner_client.get(INDEX).content.decode()
    card = html.split(f'id="template-{template.pk}"')[1].split("</article>")[0]
    for text in (
        "Residual sweep",
        "every fourth layer",
        "0, 4-6, 8",
        "Residual Stream, MLP Output",
        "<dd>all</dd>",
        "32 <span",
        "micro 8",
        "256 tokens",
        "20 <span",
        "float32",
        "&quot;k&quot;: &quot;v&quot;",
    ):
        assert text in card, text
    assert 'hx-confirm="Delete the template “Residual sweep”?"' in card


def test_it_escapes_html_in_names_and_descriptions(owner_client, make_template):
    make_template("<script>alert(1)</script>", description="<b>bold</b>")
    html = owner_client.get(INDEX).content.decode()
    assert "<script>alert(1)</script>" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert 'hx-confirm="Delete the template “&lt;script&gt;alert(1)&lt;/script&gt;”?"' in html


def test_the_search_box_searches_as_the_user_types(owner_client):
    html = owner_client.get(INDEX).content.decode()
    filters = html.split('id="template-filters"')[1].split("</form>")[0]
    assert 'hx-trigger="input delay:300ms' in filters and 'hx-push-url="true"' in filters
    assert 'hx-target="#template-list"' in filters and 'type="search"' in filters


def test_it_searches_names_and_descriptions(owner_client, make_template):
    make_template("alpha", description="early layers")
    make_template("beta", description="uses the MLP")
    make_template("gamma")
    response = owner_client.get(INDEX, {"q": "mlp"}, **LIST)
    html = response.content.decode()
    assert (
        names(html) == ["beta"]
        and "<html" not in html
        and html.lstrip().startswith('<div id="template-list"')
    )
    assert names(owner_client.get(INDEX, {"q": "ALPH"}, **LIST).content.decode()) == ["alpha"]
    assert (
        "No template matches these filters." in owner_client.get(INDEX, {"q": "zzz"}, **LIST).content.decode()
    )


def test_it_filters_favorites(owner_client, make_template):
    make_template("plain")
    make_template("starred", is_favorite=True)
    assert names(owner_client.get(INDEX, {"favorites": "on"}, **LIST).content.decode()) == ["starred"]


def test_it_sorts_by_each_order(owner_client, make_template):
    now = timezone.now()
    for i, (name, favorite) in enumerate([("b", False), ("C", True), ("a", False)]):
        t = make_template(name, is_favorite=favorite)
        ExtractionTemplate.objects.filter(pk=t.pk).update(
            created_at=now - timedelta(days=10 - i), updated_at=now - timedelta(days=i)
        )

    def order(sort):
        return names(owner_client.get(INDEX, {"sort": sort}, **LIST).content.decode())

    assert order("name") == ["a", "b", "C"]
    assert order("newest") == ["a", "C", "b"]
    assert order("oldest") == ["b", "C", "a"]
    assert order("updated") == ["b", "C", "a"]
    assert order("favorites") == ["C", "a", "b"] == order("")
    assert order("bogus") == ["C", "a", "b"]  # an unknown sort falls back, never a 500


def test_it_paginates_twenty_per_page(owner_client, make_template):
    for i in range(45):
        make_template(f"t{i:02d}")
    first = owner_client.get(INDEX, {"sort": "name"}, **LIST).content.decode()
    assert names(first) == [f"t{i:02d}" for i in range(20)] and "Page 1 of 3" in first
    assert 'href="?sort=name&page=2"' in first and 'hx-push-url="true"' in first.split('class="pager"')[1]
    third = owner_client.get(INDEX, {"sort": "name", "page": 3}).content.decode()
    assert names(third) == [f"t{i:02d}" for i in range(40, 45)] and "Page 3 of 3" in third
    assert names(owner_client.get(INDEX, {"sort": "name", "page": "x"}, **LIST).content.decode())[0] == "t00"


def test_it_labels_hook_types_as_the_extraction_modal_does(owner_client, make_template):
    template = make_template("Sweep", hook_types=["residual", "attention"])
    html = owner_client.get(INDEX).content.decode()
    card = html.split(f'id="template-{template.pk}"')[1].split("</article>")[0]
    assert "<dd>Residual Stream, Attention Output</dd>" in card
    form = html.split('id="template-form"')[1].split("</form>")[0]
    for value, label in (
        ("residual", "Residual Stream"),
        ("mlp", "MLP Output"),
        ("attention", "Attention Output"),
    ):
        assert f'value="{value}"' in form and f"<span>{label}</span>" in form
