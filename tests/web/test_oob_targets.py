"""Every out-of-band swap the templates make has its target on the pages whose forms cause it:
a missing target fails silently in the browser (the toast never shows)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from tests.web.owned import extraction_of, template_of

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
# Where each selector target must be: every page (the toasts), or the page of its list.
TARGETS = {"toasts": None, "model-list": "models_app:index", "dataset-list": "models_app:datasets"}


def pages(owner) -> list[str]:
    extraction = extraction_of(owner)
    template_of(owner)
    return [
        reverse("models_app:index"),
        reverse("models_app:datasets"),
        reverse("models_app:extractions"),
        reverse("models_app:extraction", args=[extraction.pk]),
        reverse("templates_app:index"),
        reverse("models_app:api-tokens"),
    ]


def test_it_aims_out_of_band_swaps_only_at_known_targets():
    used = set()
    for folder in (
        ROOT / "templates",
        ROOT / "models_app" / "templates",
        ROOT / "templates_app" / "templates",
    ):
        for template in folder.glob("**/*.html"):
            used |= set(re.findall(r'hx-swap-oob="[a-z]+:#([\w-]+)"', template.read_text()))
    assert used == set(TARGETS)


def test_it_has_every_target_where_its_swap_can_come(owner_client, owner):
    for url in pages(owner):
        html = owner_client.get(url).content.decode()
        for target, page in TARGETS.items():
            if page is None or reverse(page) == url:
                assert f'id="{target}"' in html, (url, target)


def test_its_lists_are_there_when_empty(owner_client):
    assert 'id="model-list"' in owner_client.get(reverse("models_app:index")).content.decode()
    assert 'id="dataset-list"' in owner_client.get(reverse("models_app:datasets")).content.decode()
