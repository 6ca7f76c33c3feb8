"""Who may call the API: a personal token (stored hashed) or a signed-in session."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from models_app.models import ApiToken
from tests.api.client import ApiClient

pytestmark = pytest.mark.django_db


def test_it_refuses_a_request_without_credentials():
    response = ApiClient(None).get("/models")
    assert response.status_code == 401 and response.json() == {"detail": "Unauthorized"}


def test_it_refuses_an_unknown_token(api):
    assert ApiClient("mist_" + "x" * 43).get("/models").status_code == 401


def test_a_token_signs_its_user_in(api, alice):
    response = api.post("/templates", {"name": "mine", "layer_indices": [0], "hook_types": ["residual"]})
    assert response.status_code == 201 and response.json()["owner"] == "alice"


def test_it_stores_only_the_tokens_digest(alice):
    record, token = ApiToken.issue(alice, "notebook")
    stored = ApiToken.objects.filter(pk=record.pk).values().get()
    assert token not in str(stored) and stored["digest"] != token and len(stored["digest"]) == 64
    assert token.startswith(stored["hint"])


def test_a_revoked_token_no_longer_works(alice, client):
    record, token = ApiToken.issue(alice, "notebook")
    client.force_login(alice)
    client.post(reverse("models_app:api-token-revoke", args=[record.pk]))
    assert ApiClient(token).get("/models").status_code == 401


def test_a_token_of_an_inactive_user_no_longer_works(alice):
    _record, token = ApiToken.issue(alice, "notebook")
    alice.is_active = False
    alice.save()
    assert ApiClient(token).get("/models").status_code == 401


def test_a_session_reads_the_api(client, alice):
    client.force_login(alice)
    assert client.get("/api/v1/models").status_code == 200


def test_a_session_needs_the_csrf_token_to_change_anything(alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    response = browser.post("/api/v1/templates", '{"name": "x"}', content_type="application/json")
    assert response.status_code == 403


def test_the_tokens_page_shows_a_new_token_once(client, alice):
    client.force_login(alice)
    response = client.post(reverse("models_app:api-tokens"), {"name": "notebook"})
    assert response.status_code == 302  # a reload of the page that follows makes no second token
    created = client.get(response["Location"]).content.decode()
    token = created.split('id="new-token-value">')[1].split("<")[0]
    assert ApiToken.objects.count() == 1
    assert ApiClient(token).get("/models").status_code == 200
    again = client.get(reverse("models_app:api-tokens")).content.decode()
    assert token not in again and "notebook" in again and token[:11] in again


def test_one_cannot_revoke_someone_elses_token(client, alice, other_user):
    record, token = ApiToken.issue(alice, "notebook")
    client.force_login(other_user)
    assert client.post(reverse("models_app:api-token-revoke", args=[record.pk])).status_code == 404
    assert ApiClient(token).get("/models").status_code == 200


def test_staff_make_a_token_for_a_user_in_the_admin(owner, alice, client):
    owner.is_superuser = True
    owner.save()
    client.force_login(owner)
    response = client.post(
        "/admin/models_app/apitoken/add/", {"user": alice.pk, "name": "from admin"}, follow=True
    )
    message = next(str(m) for m in response.context["messages"])
    token = message.split(": ")[1].split(" ")[0]
    assert ApiClient(token).get("/models").status_code == 200
    assert ApiToken.objects.get().user == alice


def test_the_openapi_document_is_served(api):
    document = api.get("/openapi.json").json()
    assert (
        document["openapi"].startswith("3.")
        and "/api/v1/extractions/{extraction_id}/examples" in document["paths"]
    )
    assert document["components"]["securitySchemes"]["TokenAuth"] == {"type": "http", "scheme": "bearer"}


def test_staff_without_superuser_make_tokens_for_themselves_only(client, django_user_model, alice):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("staffer", password="pw-staff-123", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["add_apitoken", "view_apitoken"]))
    client.force_login(staff)
    response = client.post("/admin/models_app/apitoken/add/", {"user": alice.pk, "name": "as alice"})
    assert response.status_code == 200 and not ApiToken.objects.exists()  # the form refused the choice
    client.post("/admin/models_app/apitoken/add/", {"user": staff.pk, "name": "mine"})
    assert ApiToken.objects.get().user == staff


def test_the_token_waits_for_its_page_encrypted(client, alice):
    client.force_login(alice)
    client.post(reverse("models_app:api-tokens"), {"name": "notebook"})
    from django.contrib.sessions.models import Session

    stored = Session.objects.get().get_decoded()
    assert stored["new_api_token"] and "mist_" not in str(stored)


def test_a_second_token_with_the_same_name_is_refused(client, alice):
    ApiToken.issue(alice, "notebook")
    client.force_login(alice)
    response = client.post(reverse("models_app:api-tokens"), {"name": "Notebook"})
    assert response.status_code == 422 and "already have a token named" in response.content.decode()
    assert ApiToken.objects.count() == 1
