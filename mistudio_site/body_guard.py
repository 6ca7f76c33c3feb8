"""Request bodies are judged before they are read.

Django's ASGI handler reads a request's whole body (to a temporary file) before any middleware,
authentication or view runs, so an anonymous client could make the server take in gigabytes
only to answer 403. This wrapper decides from the headers first:
- a body larger than the largest upload (plus room for the form around it) gets 413;
- a body larger than a small form, from a client with neither a signed-in session nor a valid
  API token (Authorization: Bearer), gets 403 (signing in is a small form, so the login page
  still works);
and counts the bytes of a body sent without a length, stopping it at the same bound. Everything
else passes to Django untouched, which spools it to disk as it arrives.
"""
from __future__ import annotations

from http.cookies import SimpleCookie

from asgiref.sync import sync_to_async
from django.conf import settings

ANONYMOUS_BODY_LIMIT = 64 * 1024  # a login or any small form
FORM_OVERHEAD = 1 << 20  # multipart headers and the other fields around an uploaded file


class BodyTooLarge(Exception):
    pass


class BodyGuard:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        limit = settings.MAX_UPLOAD_BYTES + FORM_OVERHEAD
        declared = _int(headers.get(b"content-length"))
        if declared is not None and declared > limit:
            return await _refuse(send, 413, "The request is larger than the studio accepts.")
        if (declared is None or declared > ANONYMOUS_BODY_LIMIT) and not await _signed_in(headers):
            return await _refuse(send, 403, "Sign in first.")
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        try:
            return await self.app(scope, counted_receive, send)
        except BodyTooLarge:
            return await _refuse(send, 413, "The request is larger than the studio accepts.")


def _int(value: bytes | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


async def _signed_in(headers: dict) -> bool:
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and token:
        return await sync_to_async(_token_has_user)(token.strip())
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
    except Exception:
        return False
    morsel = cookie.get(settings.SESSION_COOKIE_NAME)
    if morsel is None or not morsel.value:
        return False
    return await sync_to_async(_session_has_user)(morsel.value)


def _token_has_user(token: str) -> bool:
    from models_app.models import ApiToken

    return ApiToken.user_for(token) is not None


def _session_has_user(key: str) -> bool:
    from importlib import import_module

    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
    return bool(store.get("_auth_user_id"))


async def _refuse(send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
