"""An unexpected failure's error report (the DEBUG page, the mail to ADMINS) shows no token: not
the form's field, not a variable of any frame (ml/ included), not an API body, not the API's
Authorization header. The failure is injected inside the Hub pre-flight, since no real input
makes that code raise an unexpected exception."""

from __future__ import annotations

import json
import sys

import pytest
from django.core.signals import got_request_exception
from django.test import Client
from django.urls import reverse
from django.views.debug import ExceptionReporter

from models_app.ml import hub as hub_module
from models_app.models import ApiToken

pytestmark = pytest.mark.django_db

# Built, so that no source line a report quotes holds it whole.
HUB_TOKEN = "hf_" + "secretvalue" + "0123456789"


@pytest.fixture
def reports(monkeypatch):
    """The error report text and HTML of each request that failed."""

    def fail_inside(repo_id, revision="main", token=None, endpoint=None, trust_remote_code=False):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(hub_module, "preflight", fail_inside)
    found: list[str] = []

    def report(sender, request, **kwargs):
        reporter = ExceptionReporter(request, *sys.exc_info())
        found.append(reporter.get_traceback_text() + reporter.get_traceback_html())

    got_request_exception.connect(report)
    yield found
    got_request_exception.disconnect(report)


def test_a_page_post_with_a_token_reports_no_token(reports, owner):
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    response = client.post(
        reverse("models_app:download"), {"repo_id": "tiny/llama", "quantization": "fp16", "token": HUB_TOKEN}
    )
    assert response.status_code == 500 and len(reports) == 1
    assert "injected failure" in reports[0] and "fail_inside" in reports[0]
    assert HUB_TOKEN not in reports[0]


def test_an_api_call_reports_neither_its_token_nor_its_api_token(reports, owner):
    _record, api_token = ApiToken.issue(owner, "tests")
    client = Client(raise_request_exception=False)
    response = client.post(
        "/api/v1/models",
        json.dumps({"repo_id": "tiny/llama", "token": HUB_TOKEN}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_token}",
    )
    assert response.status_code == 500 and len(reports) == 1
    assert "injected failure" in reports[0]
    assert HUB_TOKEN not in reports[0] and api_token not in reports[0]


def test_a_failure_while_reading_an_api_token_reports_no_token(owner, monkeypatch):
    from models_app.api import common

    _record, api_token = ApiToken.issue(owner, "tests")

    def locked(token):
        raise RuntimeError("injected: database is locked")

    monkeypatch.setattr(common.ApiToken, "user_for", staticmethod(locked))
    found = []

    def report(sender, request, **kwargs):
        reporter = ExceptionReporter(request, *sys.exc_info())
        found.append(reporter.get_traceback_text() + reporter.get_traceback_html())

    got_request_exception.connect(report)
    try:
        response = Client(raise_request_exception=False).get(
            "/api/v1/models", HTTP_AUTHORIZATION=f"Bearer {api_token}"
        )
    finally:
        got_request_exception.disconnect(report)
    assert response.status_code == 500 and "injected: database is locked" in found[0]
    assert api_token not in found[0] and api_token[5:] not in found[0]


def test_a_form_with_no_marked_fields_reports_no_token_shaped_value(reports, owner, monkeypatch):
    """The template form marks no field sensitive: a token pasted into its description or
    metadata is hidden by its shape. The failure is injected where the template is saved."""
    from templates_app.forms import TemplateForm

    def fail_saving(self, commit=True):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(TemplateForm, "save", fail_saving)
    _record, api_token = ApiToken.issue(owner, "tests")
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    response = client.post(
        reverse("templates_app:create"),
        {
            "name": "leaky",
            "description": f"my token is {HUB_TOKEN}",
            "layer_indices": "0",
            "hook_types": ["residual"],
            "extra_metadata": json.dumps({"note": api_token}),
        },
    )
    assert response.status_code == 500 and len(reports) == 1
    assert "injected failure" in reports[0] and "leaky" in reports[0]  # the other fields still show
    assert HUB_TOKEN not in reports[0] and api_token not in reports[0]
