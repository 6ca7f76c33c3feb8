"""Who may open the live websocket, against the real server (daphne, as run_studio starts it)
over raw sockets: only a page of the studio's own origin, scheme, host and port alike, with a
signed-in session. A page on another port of the same machine is refused."""

from __future__ import annotations

import base64
import os
import socket

import pytest

from tests.workers import first_line, start_daphne, stop

# Slow: daphne in a process of its own.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def handshake(port: int, origin: str | None, cookie: str, host: str | None = None) -> str:
    """The status line the server answers a websocket handshake with."""
    lines = [
        "GET /ws/live/ HTTP/1.1",
        f"Host: {host or f'127.0.0.1:{port}'}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
        f"Cookie: {cookie}",
        *([f"Origin: {origin}"] if origin else []),
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return first_line(sock)


@pytest.fixture
def cookie(client, owner) -> str:
    client.force_login(owner)
    return f"sessionid={client.cookies['sessionid'].value}"


def serve(settings, monkeypatch, **env: str) -> tuple:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    process, url = start_daphne(settings, "http://127.0.0.1:9")
    return process, int(url.rsplit(":", 1)[1])


ACCEPTED, REFUSED = "HTTP/1.1 101 Switching Protocols", "HTTP/1.1 403 Access denied"


def test_it_accepts_only_the_studios_own_origin(settings, monkeypatch, cookie):
    process, port = serve(settings, monkeypatch)
    try:
        assert handshake(port, f"http://127.0.0.1:{port}", cookie) == ACCEPTED
        assert handshake(port, "http://127.0.0.1:9999", cookie) == REFUSED  # another port, same machine
        assert handshake(port, f"https://127.0.0.1:{port}", cookie) == REFUSED  # another scheme
        assert handshake(port, f"http://localhost:{port}", cookie) == REFUSED  # another allowed host
        assert handshake(port, "http://127.0.0.1", cookie) == REFUSED  # port 80
        assert handshake(port, "null", cookie) == REFUSED
        assert handshake(port, None, cookie) == REFUSED
        # A name that resolves here (DNS rebinding): its page and its Host agree, but it is not allowed.
        assert handshake(port, f"http://evil.example:{port}", cookie, host=f"evil.example:{port}") == REFUSED
        assert handshake(port, f"http://localhost:{port}", cookie, host=f"localhost:{port}") == ACCEPTED
        assert handshake(port, f"http://127.0.0.1:{port}", "sessionid=nobody") == REFUSED  # signed in only
    finally:
        stop(process)


def test_it_takes_the_browsers_https_origin_behind_a_proxy(settings, monkeypatch, cookie):
    """MISTUDIO_HTTPS=1: the browser's page is https on the proxy's port; a proxy that drops the
    port from the Host is named in CSRF_TRUSTED_ORIGINS."""
    process, port = serve(
        settings,
        monkeypatch,
        MISTUDIO_HTTPS="1",
        ALLOWED_HOSTS="127.0.0.1,studio.example.org",
        CSRF_TRUSTED_ORIGINS="https://studio.example.org:8443",
    )
    try:
        assert handshake(port, f"https://127.0.0.1:{port}", cookie) == ACCEPTED
        assert handshake(port, f"http://127.0.0.1:{port}", cookie) == REFUSED
        assert handshake(port, "https://127.0.0.1:9999", cookie) == REFUSED
        proxied = "studio.example.org"
        assert handshake(port, "https://studio.example.org:8443", cookie, host=proxied) == ACCEPTED
        assert handshake(port, "https://studio.example.org", cookie, host=proxied) == ACCEPTED
        assert handshake(port, "https://studio.example.org:9999", cookie, host=proxied) == REFUSED
    finally:
        stop(process)
