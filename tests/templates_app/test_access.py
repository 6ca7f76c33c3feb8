from __future__ import annotations

import pytest
from django.urls import reverse

from templates_app.models import ExtractionTemplate

pytestmark = pytest.mark.django_db

PAGES = [
    ("templates_app:index", []),
    ("templates_app:create", []),
    ("templates_app:edit", [1]),
    ("templates_app:export", []),
]
ACTIONS = [
    ("templates_app:create", []),
    ("templates_app:edit", [1]),
    ("templates_app:duplicate", [1]),
    ("templates_app:delete", [1]),
    ("templates_app:favorite", [1]),
    ("templates_app:import", []),
]


@pytest.mark.parametrize("method, name, args", [("get", *p) for p in PAGES] + [("post", *a) for a in ACTIONS])
def test_it_redirects_anonymous_users_to_login(anonymous_client, method, name, args):
    ExtractionTemplate.objects.create(pk=1, name="t", layer_indices=[0], hook_types=["mlp"])
    response = getattr(anonymous_client, method)(reverse(name, args=args), {"name": "changed"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    template = ExtractionTemplate.objects.get()
    assert template.name == "t" and template.is_favorite is False and ExtractionTemplate.objects.count() == 1


@pytest.mark.parametrize(
    "name, args",
    [
        ("templates_app:duplicate", [1]),
        ("templates_app:delete", [1]),
        ("templates_app:favorite", [1]),
        ("templates_app:import", []),
    ],
)
def test_it_refuses_get_on_actions(owner_client, name, args):
    ExtractionTemplate.objects.create(pk=1, name="t", layer_indices=[0], hook_types=["mlp"])
    assert owner_client.get(reverse(name, args=args)).status_code == 405
    assert ExtractionTemplate.objects.count() == 1


def test_it_answers_404_for_an_unknown_template(owner_client):
    assert owner_client.get(reverse("templates_app:edit", args=[99])).status_code == 404
    assert owner_client.post(reverse("templates_app:favorite", args=[99])).status_code == 404
