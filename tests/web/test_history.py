"""The Extractions tab: every extraction, with filters and sort; the History button on cards."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from models_app.models import Extraction
from tests.helpers import HTMX

# Slow: every test first downloads a model and adds a dataset by their real jobs (`ready`) and extracts.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def listed(client, **query) -> list[int]:
    html = client.get(
        reverse("models_app:extractions"), query, **HTMX, HTTP_HX_TARGET="extraction-list"
    ).content.decode()
    import re

    return [int(pk) for pk in re.findall(r'id="extraction-row-(\d+)"', html)]


def test_it_lists_every_extraction_with_its_figures(owner_client, extract):
    done = extract()
    html = owner_client.get(reverse("models_app:extractions")).content.decode()
    assert 'class="tab active"' in html and ">Extractions<" in html
    row = html[html.index(f'id="extraction-row-{done.pk}"') :]
    row = row[: row.index("</tr>")]
    for text in ("llama", "corpus", "0, 1", "Residual Stream, MLP Output", ">12<", "Completed"):
        assert text in row, text
    assert f"{done.tokens_per_second:.0f}" in row and done.size_bytes > 0
    assert done.duration is not None


def test_it_filters_by_model_dataset_status_and_hook(owner_client, extract, ready):
    model, dataset = ready
    residual = extract(hooks=["residual"])
    mlp = extract(hooks=["mlp"], layers=[1])
    failed = Extraction.objects.create(
        model=model, dataset=dataset, layers=[0], hooks=["attention"], status="failed", error_message="boom"
    )
    assert listed(owner_client) == [failed.pk, mlp.pk, residual.pk]
    assert listed(owner_client, hook="mlp") == [mlp.pk]
    assert listed(owner_client, hook="residual") == [residual.pk]
    assert listed(owner_client, status="failed") == [failed.pk]
    assert listed(owner_client, model=model.pk, status="completed") == [mlp.pk, residual.pk]
    assert listed(owner_client, dataset=dataset.pk, hook="attention") == [failed.pk]


def test_it_sorts_by_each_column(owner_client, ready):
    model, dataset = ready
    now = timezone.now()
    slow = Extraction.objects.create(
        model=model,
        dataset=dataset,
        layers=[1],
        hooks=["mlp"],
        status="completed",
        samples_total=5,
        tokens_per_second=10,
        size_bytes=900,
        started_at=now - timedelta(seconds=60),
        completed_at=now,
    )
    fast = Extraction.objects.create(
        model=model,
        dataset=dataset,
        layers=[0],
        hooks=["residual"],
        status="completed",
        samples_total=50,
        tokens_per_second=500,
        size_bytes=100,
        started_at=now - timedelta(seconds=2),
        completed_at=now,
    )
    queued = Extraction.objects.create(model=model, dataset=dataset, layers=[0, 1], hooks=["attention"])
    assert listed(owner_client, sort="duration") == [slow.pk, fast.pk, queued.pk]  # unknown last
    assert listed(owner_client, sort="speed") == [fast.pk, slow.pk, queued.pk]
    assert listed(owner_client, sort="size") == [slow.pk, fast.pk, queued.pk]
    assert listed(owner_client, sort="samples") == [fast.pk, slow.pk, queued.pk]
    assert listed(owner_client, sort="oldest") == [slow.pk, fast.pk, queued.pk]
    assert listed(owner_client, sort="id") == [queued.pk, fast.pk, slow.pk]
    assert listed(owner_client, sort="status")[-1] == queued.pk


def test_a_model_card_has_a_history_button_marked_when_it_has_completed_extractions(
    owner_client, extract, ready
):
    model, _ = ready
    card = owner_client.get(reverse("models_app:card", args=[model.pk]), **HTMX).content.decode()
    assert f'href="/extractions/?model={model.pk}"' in card and "count-badge" not in card
    extract()
    page = owner_client.get(reverse("models_app:index")).content.decode()
    assert "has-history" in page and '<span class="count-badge">1</span>' in page


def test_it_needs_a_signed_in_user(client, extract):
    done = extract()
    for url in (
        reverse("models_app:extractions"),
        reverse("models_app:extraction-row", args=[done.pk]),
        reverse("models_app:extraction-examples", args=[done.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_it_pages_through_many_extractions(owner_client, ready):
    model, dataset = ready
    Extraction.objects.bulk_create(
        [
            Extraction(model=model, dataset=dataset, layers=[0], hooks=["mlp"], status="completed")
            for _ in range(30)
        ]
    )
    first = listed(owner_client)
    second = listed(owner_client, page=2)
    assert len(first) == 25 and len(second) == 5 and not set(first) & set(second)
    html = owner_client.get(reverse("models_app:extractions"), {"hook": "mlp"}).content.decode()
    assert 'href="?hook=mlp&page=2"' in html and "Page 1 of 2" in html


def test_a_models_history_shows_only_its_own_extractions_even_when_it_has_none(owner_client, extract, ready):
    model, _dataset = ready
    extract()
    other = type(model).objects.create(name="other", repo_id="tiny/gpt2", status="ready")
    assert listed(owner_client, model=other.pk) == []
    html = owner_client.get(reverse("models_app:extractions"), {"model": other.pk}).content.decode()
    assert "No extraction matches these filters." in html


def test_a_bad_parameter_does_not_drop_the_other_filters(owner_client, extract):
    mlp = extract(hooks=["mlp"])
    extract(hooks=["residual"])
    assert listed(owner_client, hook="mlp", status="no-such-status", sort="bogus") == [mlp.pk]


def test_it_sorts_by_the_number_of_layers(owner_client, ready):
    model, dataset = ready
    records = [
        Extraction.objects.create(model=model, dataset=dataset, layers=layers, hooks=["mlp"])
        for layers in ([2], [10], [0, 1, 2])
    ]
    assert listed(owner_client, sort="layers") == [
        records[2].pk,
        records[0].pk,
        records[1].pk,
    ]  # then by first layer


def test_it_labels_hooks_as_the_extraction_modal_does(owner_client, extract, ready):
    model, _dataset = ready
    record = extract(layers=[0, 1], hooks=["residual", "mlp"])
    modal = owner_client.get(reverse("models_app:extract", args=[model.pk]), **HTMX).content.decode()
    assert "<span>Residual Stream</span>" in modal and "<span>MLP Output</span>" in modal
    listing = owner_client.get(reverse("models_app:extractions")).content.decode()
    row = listing[listing.index(f'id="extraction-row-{record.pk}"') :]
    assert "Residual Stream, MLP Output" in row[: row.index("</tr>")]
    assert '<option value="residual">Residual Stream</option>' in listing  # the hook filter
    page = owner_client.get(reverse("models_app:extraction", args=[record.pk])).content.decode()
    assert "<dt>Hooks</dt><dd>Residual Stream, MLP Output</dd>" in page
    assert "<td>MLP Output</td>" in page  # the statistics table
    assert "Sparsity · Residual Stream" in page and "Layer 1 · MLP Output" in page  # chart captions
    assert not re.search(r">\s*(residual|mlp)(, mlp)?\s*<", page + listing)  # no bare stored value as a label
