"""Which pages may open the studio's websocket.

Browsers apply no same-origin rule to websockets: any page may open one to the studio, and the
browser sends the user's cookies with it. The Origin header, which a page cannot forge, says
whose page it is, so the server must compare it. Channels' AllowedHostsOriginValidator compares
only its host, which lets a page served by anything else on the same machine (another port) open
the live socket as the signed-in user. Here the whole origin (scheme, host and port) must be the
studio's own, as Django's CSRF check judges a form's Origin: the scheme the browser used (https
behind a TLS proxy, MISTUDIO_HTTPS=1) with the Host it connected to (which must be an allowed
host), or one of CSRF_TRUSTED_ORIGINS (a proxy that rewrites the Host; `https://*.example.org`
for subdomains)."""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin such as `https://studio.example.org:8443`, the port
    filled in when it is the scheme's default; None for anything else ("null", a path, ftp:)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if (
        scheme not in DEFAULT_PORTS
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def allowed(origin: str, host: str, secure: bool) -> bool:
    """Whether a page of `origin` may use the studio reached as `host` (the Host header) over a
    connection the browser made with https (`secure`) or http."""
    domain, _port = split_domain_port(host)
    hosts = settings.ALLOWED_HOSTS or ([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    if not domain or not validate_host(domain, hosts):
        return False  # also a page of a name that resolves here by DNS rebinding
    theirs = origin_of(origin)
    if theirs is None:
        return False
    if theirs == origin_of(f"{'https' if secure else 'http'}://{host}"):
        return True
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if "*" in trusted:  # https://*.example.org: that domain and its subdomains, as Django reads it
            pattern = urlsplit(trusted)
            netloc = urlsplit(origin.strip()).netloc.lower()
            if pattern.scheme.lower() == theirs[0] and is_same_domain(
                netloc, pattern.netloc.lstrip("*").lower()
            ):
                return True
        elif origin_of(trusted) == theirs:
            return True
    return False


class SameOriginValidator:
    """ASGI middleware for the websocket route: refuses the handshake (403) unless its Origin is
    the studio's own (`allowed`)."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        headers = [(name.lower(), value) for name, value in scope.get("headers", [])]
        origins = [value for name, value in headers if name == b"origin"]
        hosts = [value for name, value in headers if name == b"host"]
        # Behind a TLS proxy (MISTUDIO_HTTPS=1) the server sees ws: while the browser used https.
        secure = settings.HTTPS or scope.get("scheme") == "wss"
        try:
            ok = (
                len(origins) == 1
                and len(hosts) == 1
                and allowed(origins[0].decode("latin1"), hosts[0].decode("latin1"), secure)
            )
        except UnicodeError:
            ok = False
        if not ok:
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
