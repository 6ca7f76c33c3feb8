"""Comparisons on pages: "Compare with…" on an extraction's page, "Compare selected" on the
Extractions list, the comparison's own page (the layer where each format departs most, a line per
format across layers), live updates, and the admin. The formats here are copies of one engine
folder with one (layer, hook) scaled, so where each departs is known; the figures themselves are
tested against numpy in tests/ml/test_compare.py and on real Q8/Q4/Q2 layers in
test_compare_extractions.py."""

from __future__ import annotations

import pytest
from django.urls import reverse

from models_app.consumers import render_update
from models_app.models import Comparison, Extraction
from tests.helpers import HTMX
from tests.web.owned import dataset_of, extraction_of

pytestmark = pytest.mark.django_db(transaction=True)


def page(client, record) -> str:
    return client.get(reverse("models_app:extraction", args=[record.pk])).content.decode()


def test_the_page_offers_the_other_formats_most_precise_first(owner_client, formats, owner):
    records = formats()
    elsewhere = formats(dataset=dataset_of(owner, name="other corpus"))["q8"]  # another dataset
    running = extraction_of(
        owner, model=records["q8"].model, dataset=records["q8"].dataset, status="extracting"
    )
    html = page(owner_client, records["fp32"])
    form = html[html.index(f'id="comparison-form-{records["fp32"].pk}"') :]
    form = form[: form.index("</form>")]
    offered = [int(part.split('"')[0]) for part in form.split('name="others" value="')[1:]]
    assert offered == [records["q8"].pk, records["q4"].pk]
    assert elsewhere.pk not in offered and running.pk not in offered


def test_an_extraction_with_nothing_to_compare_says_how_to_get_one(owner_client, completed):
    record = completed()
    html = page(owner_client, record)
    assert f'id="no-comparable-{record.pk}"' in html and "download this model in another format" in html


def test_comparing_from_the_page_names_where_each_format_departs(owner_client, formats):
    records = formats()
    base, q8, q4 = records["fp32"], records["q8"], records["q4"]
    response = owner_client.post(
        reverse("models_app:comparison-start", args=[base.pk]), {"others": [q8.pk, q4.pk]}, **HTMX
    )
    assert response.status_code == 200
    comparison = Comparison.objects.get()
    assert comparison.status == "completed", comparison.error_message
    assert (comparison.base, comparison.other_ids) == (base, [q8.pk, q4.pk])
    section = response.content.decode()
    assert f'id="comparison-{comparison.pk}"' in section
    assert "Q8 departs most at layer 1, MLP Output" in section
    assert "Q4 departs most at layer 0, Residual Stream" in section
    by_other = {o["id"]: o["hooks"] for o in comparison.result["others"]}
    q4_error = max(h["relative_error"] for h in by_other[q4.pk])
    assert q4_error == pytest.approx(0.3, rel=1e-5)  # the residual of layer 0, scaled by 1.3

    html = owner_client.get(reverse("models_app:comparison", args=[comparison.pk])).content.decode()
    departures = html[html.index('id="departures"') :]
    departures = departures[: departures.index("</ul>")]
    assert f'id="departure-{q8.pk}"' in departures and f'id="departure-{q4.pk}"' in departures
    assert "<b>layer 0, Residual Stream</b>: relative error 0.3000" in departures
    for hook in ("residual", "mlp"):
        chart = html[html.index(f'id="chart-error-{hook}"') :]
        chart = chart[: chart.index("</figure>")]
        assert html.count(f'id="chart-error-{hook}"') == 1 and html.count(f'id="chart-cosine-{hook}"') == 1
        assert chart.count("<polyline") == 2  # a line per compared format
        assert f"Q8, extraction {q8.pk}" in chart and f"Q4, extraction {q4.pk}" in chart
    assert html.count('class="mem-table comparison-table"') == 2


def test_the_list_compares_the_ticked_extractions_against_the_most_precise(owner_client, formats):
    records = formats()
    ticked = [records["q4"].pk, records["fp32"].pk, records["q8"].pk]
    response = owner_client.post(reverse("models_app:comparison-from-list"), {"extractions": ticked})
    comparison = Comparison.objects.get()
    assert response.status_code == 302 and response.url == reverse(
        "models_app:comparison", args=[comparison.pk]
    )
    assert comparison.base == records["fp32"] and comparison.other_ids == [records["q8"].pk, records["q4"].pk]
    listing = owner_client.get(reverse("models_app:extractions")).content.decode()
    for record in records.values():
        assert f'name="extractions" value="{record.pk}" form="compare-selected"' in listing


@pytest.mark.parametrize("ticked", [1, 0, "odd"])
def test_the_list_asks_for_two_or_more(owner_client, formats, ticked):
    records = formats()
    chosen = ["²", "x", records["q8"].pk] if ticked == "odd" else [records["q8"].pk][:ticked]
    response = owner_client.post(
        reverse("models_app:comparison-from-list"), {"extractions": chosen}, follow=True
    )
    assert "Tick two or more extractions to compare." in response.content.decode()
    assert not Comparison.objects.exists()


def test_incomparable_extractions_are_refused_with_the_reason(owner_client, formats, owner):
    records = formats()
    elsewhere = formats(dataset=dataset_of(owner, name="other corpus"))["q4"]
    base = records["fp32"]
    response = owner_client.post(
        reverse("models_app:comparison-from-list"), {"extractions": [base.pk, elsewhere.pk]}, follow=True
    )
    assert f"Extraction {elsewhere.pk} has another dataset" in response.content.decode()
    refused = owner_client.post(
        reverse("models_app:comparison-start", args=[base.pk]), {"others": [elsewhere.pk]}, **HTMX
    )
    assert (
        refused.status_code == 422
        and f"Extraction {elsewhere.pk} has another dataset" in refused.content.decode()
    )
    nothing = owner_client.post(reverse("models_app:comparison-start", args=[base.pk]), {}, **HTMX)
    assert nothing.status_code == 422 and "Tick one or more extractions" in nothing.content.decode()
    assert not Comparison.objects.exists()


def test_a_comparison_is_pushed_live_and_its_removal_too(owner_client, formats):
    records = formats()
    base = records["fp32"]
    owner_client.post(
        reverse("models_app:comparison-start", args=[base.pk]), {"others": [records["q4"].pk]}, **HTMX
    )
    comparison = Comparison.objects.get()
    (status, listing), owner_id = render_update(Comparison.KIND, comparison.pk)
    assert owner_id == base.owner_id
    assert f'id="comparison-{comparison.pk}-status"' in status and 'hx-swap-oob="morph"' in status
    assert "departs most at <b>layer 0, Residual Stream</b>" in status
    assert (
        f'id="extraction-{base.pk}-comparison-list"' in listing
        and f'id="comparison-{comparison.pk}"' in listing
    )
    deleted = owner_client.post(reverse("models_app:comparison-delete", args=[comparison.pk]), **HTMX)
    assert deleted.status_code == 200 and f'id="comparison-{comparison.pk}"' not in deleted.content.decode()
    assert not Comparison.objects.exists()
    assert render_update(Comparison.KIND, comparison.pk, deleted=True) == (
        [f'<div id="comparison-{comparison.pk}" hx-swap-oob="delete"></div>'],
        None,
    )


def test_an_ended_comparison_cannot_be_cancelled(owner_client, formats):
    records = formats()
    base = records["fp32"]
    owner_client.post(
        reverse("models_app:comparison-start", args=[base.pk]), {"others": [records["q8"].pk]}, **HTMX
    )
    comparison = Comparison.objects.get()
    response = owner_client.post(
        reverse("models_app:comparison-cancel", args=[comparison.pk]),
        HTTP_HX_TARGET=f"comparison-{comparison.pk}-status",
        **HTMX,
    )
    assert "already ended (completed)" in response.content.decode()


def test_another_user_cannot_open_or_delete_a_private_studios_comparison(
    client, formats, other_user, settings
):
    settings.PRIVATE = True
    records = formats()
    comparison = Comparison.objects.create(
        base=records["fp32"], other_ids=[records["q8"].pk], owner=records["fp32"].owner
    )
    client.force_login(other_user)
    assert client.get(reverse("models_app:comparison", args=[comparison.pk])).status_code == 404
    assert client.post(reverse("models_app:comparison-delete", args=[comparison.pk])).status_code == 404
    assert Comparison.objects.filter(pk=comparison.pk).exists()


def test_the_admin_shows_comparisons_and_changes_only_their_owner(admin_client, formats):
    records = formats()
    comparison = Comparison.objects.create(
        base=records["fp32"], other_ids=[records["q8"].pk], status="completed"
    )
    changelist = admin_client.get(reverse("admin:models_app_comparison_changelist"))
    change_url = reverse("admin:models_app_comparison_change", args=[comparison.pk])
    assert changelist.status_code == 200 and change_url in changelist.content.decode()
    change = admin_client.get(change_url)
    assert change.status_code == 200
    assert admin_client.get(reverse("admin:models_app_comparison_add")).status_code == 403


def test_a_live_update_of_an_extraction_leaves_the_form_to_its_viewer(owner_client, formats):
    """The status pushed to every open page is rendered for no one in particular: it carries a
    placeholder that fetches the viewer's own "Compare with…" form."""
    records = formats()
    base = records["fp32"]
    status = render_update(Extraction.KIND, base.pk)[0][0]
    placeholder = status[status.index(f'id="comparison-candidates-{base.pk}"') :]
    placeholder = placeholder[: placeholder.index("</div>")]
    url = reverse("models_app:comparison-candidates", args=[base.pk])
    assert f'hx-get="{url}"' in placeholder and 'name="others"' not in placeholder
    form = owner_client.get(url, **HTMX).content.decode()
    assert (
        f'name="others" value="{records["q8"].pk}"' in form
        and f'name="others" value="{records["q4"].pk}"' in form
    )


def test_a_private_studio_compares_only_one_owners_extractions(
    admin_client, formats, owner, other_user, settings
):
    settings.PRIVATE = True
    mine = formats()
    theirs = formats(user=other_user)
    assert Comparison.candidates(mine["fp32"]) == [mine["q8"], mine["q4"]]
    response = admin_client.post(
        reverse("models_app:comparison-start", args=[mine["fp32"].pk]), {"others": [theirs["q4"].pk]}, **HTMX
    )  # staff see both, and still may not mix them
    assert response.status_code == 422 and "another owner" in response.content.decode()
    assert not Comparison.objects.exists()
