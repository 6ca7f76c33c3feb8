"""The studio's HTTP server: daphne, with every request body judged from its headers before a
byte of it is stored.

Daphne (Twisted) takes in a request's whole body, spooling it to a temporary file, before the
ASGI application runs, so a limit enforced by the application comes too late: anyone who can
reach the port could fill the disk with bodies that are refused only after their last byte. Here
the request itself decides, as soon as its headers are in:
- a body over a small form's size, or one sent without a length (chunked), from a client with
  neither a signed-in session nor an API token: 403. Reading stops while the session is looked
  up (in a thread, so the server never waits on the database), and nothing is stored before the
  answer;
- from a signed-in client, a body declared larger than the largest upload (plus room for the
  form around it): 413, also before any of it is stored;
- a body without a length is counted and cut at the same limit with 413;
- a request's line and headers must be complete within settings.REQUEST_GRACE_SECONDS of its
  first byte, and its body must keep arriving at settings.BODY_MIN_RATE bytes a second over
  every such period: a client that trickles (a byte every 25 s) is answered 408 and disconnected.
A refusal is written, the sending side of the connection closed, and whatever the client still
sends is read and thrown away for LINGER_SECONDS, so the client reads the answer instead of a
connection reset.

Twisted would also parse a multipart body into memory, whole, for `request.args`, which daphne
never reads: that is switched off.

Run as `python -m mistudio_site.server [daphne's options] mistudio_site.asgi:application`;
run_studio does (see `web_server_command`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from io import BytesIO
from typing import TYPE_CHECKING, cast

import daphne.server
from daphne.http_protocol import HTTPFactory, WebRequest
from twisted.internet import reactor as installed_reactor
from twisted.internet import threads
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, _GenericHTTPChannelProtocol, _getContentFile

if TYPE_CHECKING:
    from twisted.internet.base import DelayedCall, ReactorBase

log = logging.getLogger("mistudio.server")

# Twisted declares the reactor by zope Interfaces, whose methods mypy reads as if their first
# argument were `self`; every reactor Twisted installs (daphne's asyncio one too) is a ReactorBase.
reactor = cast("ReactorBase", installed_reactor)

ANONYMOUS_BODY_LIMIT = 64 * 1024  # a login or any small form
FORM_OVERHEAD = 1 << 20  # multipart headers and the other fields around an uploaded file
LINGER_SECONDS = 2.0
REASONS = {403: b"Forbidden", 408: b"Request Timeout", 413: b"Content Too Large", 503: b"Service Unavailable"}


def body_limit() -> int:
    from django.conf import settings

    return settings.MAX_UPLOAD_BYTES + FORM_OVERHEAD


class GuardedRequest(WebRequest):
    """Daphne's request with the body rules above. `stage` says where the request is:
    headers → (judging →) body → complete, or refused at any point before complete."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._parsePOSTFormSubmission = False
        self.stage = "headers"
        self.body_started = 0.0
        self.window: list[tuple[float, int]] = []  # (when, bytes received) at daphne's checks
        self.declared: int | None = None
        self.received = 0
        self.expects_continue = False
        self.process_when_judged = False

    # Twisted calls this once the headers are in, to make the body's store.
    def gotLength(self, length: int | None) -> None:
        if self.stage == "refused":  # the headers came in while a refusal lingers: nothing runs
            self.content = BytesIO()
            return None
        self.declared, self.body_started = length, time.monotonic()
        self.window = [(self.body_started, 0)]
        if length is not None and length <= ANONYMOUS_BODY_LIMIT:
            self.stage = "body"
            return super().gotLength(length)
        self.stage, self.content = "judging", BytesIO()
        # "Continue" is sent (by HTTP/1.1, as Twisted does) only to a client that may send its body.
        self.expects_continue = (
            self._take_header(b"expect", b"100-continue") and self.channel._version == b"HTTP/1.1"
        )
        self.transport.pauseProducing()
        headers = {
            name: self.requestHeaders.getRawHeaders(name, [b""])[0] for name in (b"cookie", b"authorization")
        }
        threads.deferToThread(signed_in, **{k.decode(): v for k, v in headers.items()}).addBoth(self._judged)

    def _judged(self, outcome) -> None:
        if self.stage != "judging" or self.channel is None:
            return  # refused meanwhile (too large, too slow) or the client went away
        if isinstance(outcome, Failure):
            log.error("Could not check a request's session: %s", outcome.getErrorMessage())
            return self.refuse(503, "The studio could not check your session; try again.")
        if not outcome:
            return self.refuse(403, "Sign in first.")
        if self.declared is not None and self.declared > body_limit():
            return self.refuse(413, "The request is larger than the studio accepts.")
        early = self.content.getvalue()
        self.content = _getContentFile(self.declared)  # Twisted's: memory when small, else a file
        self.content.write(early)
        self.stage = "body"
        if self.expects_continue:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.transport.resumeProducing()
        if self.process_when_judged:  # the whole body had arrived with the headers
            self.process()

    def handleContentChunk(self, data: bytes) -> None:
        if self.stage == "refused":
            return  # read and thrown away while the refusal lingers
        self.received += len(data)
        if self.received > body_limit():
            return self.refuse(413, "The request is larger than the studio accepts.")
        self.content.write(data)
        if self.stage == "judging" and self.received > ANONYMOUS_BODY_LIMIT:
            self.transport.pauseProducing()  # Twisted may resume reading on its own; not yet

    def process(self):
        if self.stage == "refused":
            return None
        if self.stage == "judging":
            self.process_when_judged = True
            return None
        self.stage = "complete"
        return super().process()

    def check_timeouts(self) -> None:
        """Called by daphne every 2 s for each open request: a body must have come at the
        minimum rate over the last grace period (not only on average since its start, which a
        client could bank by sending a burst and then holding the connection)."""
        super().check_timeouts()
        from django.conf import settings

        if self.stage != "body":
            return
        now, grace = time.monotonic(), settings.REQUEST_GRACE_SECONDS
        self.window.append((now, self.received))
        while len(self.window) > 2 and now - self.window[1][0] >= grace:
            del self.window[0]  # keep the newest sample at least `grace` old
        since, received = self.window[0]
        if now - since >= grace and self.received - received < settings.BODY_MIN_RATE * (now - since):
            self.refuse(408, "The request body arrived too slowly.")

    def refuse(self, status: int, text: str) -> None:
        """Answer now, close our side, and discard what still arrives for a moment."""
        if self.stage in ("refused", "complete") or self.transport is None:
            return
        self.stage = "refused"
        self.content = BytesIO()  # a spooled file goes now, not when the connection does
        self._take_header(b"expect", b"100-continue")
        _refuse_on(self.transport, status, text)

    def _take_header(self, name: bytes, value: bytes) -> bool:
        present = any(v.lower() == value for v in self.requestHeaders.getRawHeaders(name, []))
        self.requestHeaders.removeHeader(name)
        return present


def _refuse_on(transport, status: int, text: str) -> None:
    """Answer `status` on a connection, close our side, and read and discard what the client
    still sends for LINGER_SECONDS: closing with unread data would reset the connection, and the
    client would see the reset instead of the answer."""
    body = text.encode()
    transport.write(
        b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (status, REASONS[status], len(body), body)
    )
    log.info("Refused a request from %s: %d %s", getattr(transport.getPeer(), "host", "?"), status, text)
    transport.resumeProducing()
    if hasattr(transport, "loseWriteConnection"):
        transport.loseWriteConnection()
    reactor.callLater(LINGER_SECONDS, _close, transport)


def _close(transport) -> None:
    if getattr(transport, "connected", False):
        transport.abortConnection()


def signed_in(cookie: bytes = b"", authorization: bytes = b"") -> bool:
    """Whether the request carries an API token or a session of an active user, checked as Django
    checks them for a view (the session's password hash included); runs in a thread."""
    from http.cookies import SimpleCookie
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import get_user
    from django.db import close_old_connections, connection
    from django.http import HttpRequest

    close_old_connections()
    try:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            from models_app.models import ApiToken

            return ApiToken.user_for(token.strip()) is not None  # an active user's token
        jar = SimpleCookie()
        try:
            jar.load(cookie.decode("latin-1"))
        except Exception:
            return False
        morsel = jar.get(settings.SESSION_COOKIE_NAME)
        if morsel is None or not morsel.value:
            return False
        request = HttpRequest()
        request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key=morsel.value)
        user = get_user(request)
        return user.is_authenticated and user.is_active
    finally:
        connection.close()  # a pool thread must not hold the database between requests


class GuardedChannel(HTTPChannel):
    """Twisted's HTTP connection, with a deadline for each request's line and headers from its
    first byte. Twisted's own idle timeout starts again with every byte, and a request object
    (which judges the rest) exists only once its first line is complete, so a client sending a
    byte a second could otherwise hold the connection for ever."""

    headers_due: DelayedCall | None = None  # ends a request whose headers are late

    def dataReceived(self, data: bytes) -> None:
        if self.headers_due is None and self.line_mode and not self._handlingRequest:
            from django.conf import settings

            self.headers_due = reactor.callLater(settings.REQUEST_GRACE_SECONDS, self._headers_late)
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        self._cancel_deadline()
        super().allHeadersReceived()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_deadline()
        super().connectionLost(reason)

    def _cancel_deadline(self) -> None:
        if self.headers_due is not None and self.headers_due.active():
            self.headers_due.cancel()
        self.headers_due = None

    def _headers_late(self) -> None:
        self.headers_due = None
        request = self.requests[-1] if self.requests else None
        if isinstance(request, GuardedRequest) and request.stage == "headers":
            request.refuse(408, "The request headers took too long to arrive.")
        elif request is None and self.transport is not None:  # not even a request line yet
            _refuse_on(self.transport, 408, "The request headers took too long to arrive.")


def _guarded_channel(factory: HTTPFactory) -> _GenericHTTPChannelProtocol:
    # What HTTPFactory.protocol makes (Twisted's wrapper, which can switch to HTTP/2 under TLS),
    # around the guarded connection.
    return _GenericHTTPChannelProtocol(GuardedChannel())


class GuardedHTTPFactory(HTTPFactory):
    protocol = _guarded_channel

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = GuardedRequest
        return protocol


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mistudio_site.settings")
    import django

    django.setup()
    # daphne's Server builds its factory by this module-level name; naming ours here is the one
    # place it can be swapped without copying Server.run.
    daphne.server.HTTPFactory = GuardedHTTPFactory
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
