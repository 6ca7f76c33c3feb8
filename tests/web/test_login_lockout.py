"""Login lockout: repeated failures for one username, or from one address, refuse even the right
password until the cool-off has passed; the admin login counts too; API tokens do not."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import requests
from django.core.management import call_command
from django.db.models import F
from django.urls import reverse

from tests.workers import start_studio, stop

pytestmark = pytest.mark.django_db(transaction=True)
LIMIT = 20  # MISTUDIO_LOGIN_FAILURE_LIMIT's default, which these tests keep
LOCKED = "Too many failed logins for this account or from this address"
WRONG = "Please enter a correct username and password"


def log_in(
    client, username: str, password: str, address: str = "127.0.0.1", path: str = "/login/", **headers
):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address, **headers)


def signed_in_as(client) -> str | None:
    response = client.get(reverse("models_app:index"))
    return response.wsgi_request.user.get_username() if response.status_code == 200 else None


def wait_out_the_cooloff() -> None:
    """Ten minutes pass for every recorded failure (the cool-off counts from the last one)."""
    from axes.models import AccessAttempt

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=10, seconds=1))


@pytest.fixture
def studio(settings):
    process, url = start_studio(settings, "http://127.0.0.1:9", "--no-workers")
    yield url
    stop(process)


def studio_login(browser: requests.Session, url: str, password: str) -> requests.Response:
    return browser.post(
        f"{url}/login/",
        data={"username": "owner", "password": password, "csrfmiddlewaretoken": browser.cookies["csrftoken"]},
        headers={"Referer": f"{url}/login/"},
    )


@pytest.mark.slow
def test_it_refuses_the_right_password_after_twenty_failures_on_the_real_server(studio, owner):
    browser = requests.Session()
    browser.get(f"{studio}/login/")
    for _ in range(LIMIT - 1):
        failed = studio_login(browser, studio, "not-the-password")
        assert failed.status_code == 200 and WRONG in failed.text
    assert studio_login(browser, studio, "not-the-password").status_code == 429
    refused = studio_login(browser, studio, "pw-owner-123")
    assert refused.status_code == 429
    assert LOCKED in refused.text and "Try again in 10 minutes" in refused.text
    assert 'name="password"' in refused.text and 'value="owner"' in refused.text  # the form, not a bare 403
    assert "sessionid" not in browser.cookies
    assert browser.get(f"{studio}/").url.startswith(f"{studio}/login/")

    wait_out_the_cooloff()
    browser.get(f"{studio}/login/")
    signed_in = studio_login(browser, studio, "pw-owner-123")
    assert signed_in.url == f"{studio}/" and "sessionid" in browser.cookies


def test_it_lets_the_right_password_in_below_the_limit(client, owner):
    for _ in range(LIMIT - 1):
        assert WRONG in log_in(client, "owner", "wrong").content.decode()
    assert log_in(client, "owner", "pw-owner-123").status_code == 302
    assert signed_in_as(client) == "owner"


def test_it_locks_a_username_whatever_address_the_failures_come_from(client, owner):
    for i in range(LIMIT):
        log_in(client, "owner", "wrong", address=f"10.0.0.{i + 1}")
    refused = log_in(client, "owner", "pw-owner-123", address="10.0.1.1")
    assert refused.status_code == 429 and LOCKED in refused.content.decode()
    assert signed_in_as(client) is None


def test_it_locks_an_address_that_tries_many_usernames(client, owner, other_user):
    for i in range(LIMIT):
        log_in(client, f"guess{i}", "wrong", address="10.0.0.7")
    refused = log_in(client, "other", "pw-other-123", address="10.0.0.7")
    assert refused.status_code == 429 and LOCKED in refused.content.decode()
    assert log_in(client, "other", "pw-other-123", address="10.0.0.8").status_code == 302
    assert signed_in_as(client) == "other"


def test_it_counts_the_address_behind_the_proxy_not_the_proxys(client, settings, other_user):
    settings.HTTPS = True  # MISTUDIO_HTTPS=1: behind a TLS proxy, REMOTE_ADDR is the proxy's
    for i in range(LIMIT):
        # What a client writes into X-Forwarded-For stands left of what the proxy appends.
        log_in(client, f"guess{i}", "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}, 203.0.113.5")
    assert log_in(client, "other", "pw-other-123", HTTP_X_FORWARDED_FOR="203.0.113.5").status_code == 429
    assert log_in(client, "other", "pw-other-123", HTTP_X_FORWARDED_FOR="203.0.113.6").status_code == 302


def test_the_admin_login_goes_through_the_same_lockout(client, owner):
    admin_login = reverse("admin:login")
    for _ in range(LIMIT):
        log_in(client, "owner", "wrong", path=admin_login)
    refused = log_in(client, "owner", "pw-owner-123", path=admin_login)
    assert refused.status_code == 429 and LOCKED in refused.content.decode()
    assert log_in(client, "owner", "pw-owner-123").status_code == 429
    assert client.get(reverse("admin:index")).status_code == 302  # still signed out


def test_api_tokens_work_while_their_user_is_locked_out(client, owner):
    from models_app.models import ApiToken

    _, token = ApiToken.issue(owner, "notebook")
    for _ in range(LIMIT):
        log_in(client, "owner", "wrong")
    assert log_in(client, "owner", "pw-owner-123").status_code == 429
    response = client.get("/api/v1/models", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200


def test_an_administrator_clears_a_lock_from_the_terminal(client, owner):
    for _ in range(LIMIT):
        log_in(client, "owner", "wrong")
    assert log_in(client, "owner", "pw-owner-123").status_code == 429
    call_command("axes_reset_username", "owner", stdout=StringIO())
    assert log_in(client, "owner", "pw-owner-123").status_code == 302
