"""Bodies judged before they are read: the ASGI application, driven directly, must answer an
anonymous or oversized upload without pulling its body."""
from __future__ import annotations

import asyncio

import pytest
from django.urls import reverse

from tests.conftest import run_async

pytestmark = pytest.mark.django_db(transaction=True)
CHUNK = 1 << 20


def request(path: str, length: int | None, cookie: str = "", chunks: int = 64):
    from mistudio_site.asgi import application

    pulled, sent = [], []
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"multipart/form-data; boundary=x")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}

    async def receive():
        if len(pulled) >= chunks:  # the body is over: like a server, wait for a disconnect
            await asyncio.sleep(3600)
        pulled.append(1)
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": len(pulled) < chunks}

    async def send(message):
        sent.append(message)

    async def scenario():
        await application(scope, receive, send)

    run_async(scenario)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, len(pulled)


def test_an_anonymous_64_mb_upload_is_refused_before_its_body_is_read():
    status, pulled = request(reverse("models_app:dataset-upload"), 64 * CHUNK)
    assert status == 403 and pulled == 0


def test_an_upload_over_the_limit_is_refused_from_its_length(client, owner, settings):
    settings.MAX_UPLOAD_BYTES = 8 * CHUNK
    client.force_login(owner)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    status, pulled = request(reverse("models_app:dataset-upload"), 64 * CHUNK, cookie)
    assert status == 413 and pulled == 0


def test_a_body_without_a_length_is_stopped_at_the_limit(client, owner, settings):
    settings.MAX_UPLOAD_BYTES = 4 * CHUNK
    client.force_login(owner)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    status, pulled = request(reverse("models_app:dataset-upload"), None, cookie)
    assert status == 413 and pulled <= 6  # the limit plus the form's allowance, not all 64 MB


def test_a_signed_in_upload_within_the_limit_reaches_the_page(client, owner):
    client.force_login(owner)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    status, pulled = request(reverse("models_app:dataset-upload"), 2 * CHUNK, cookie, chunks=2)
    assert pulled == 2 and status in (200, 403, 422)  # read, then judged by Django (CSRF here)


def test_the_login_form_still_works_for_anonymous_visitors():
    status, pulled = request("/login/", 300, chunks=1)
    assert pulled == 1 and status == 403  # read and answered by Django (no CSRF cookie in this bare request)
