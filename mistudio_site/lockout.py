"""Login lockout (django-axes, configured in settings.py): which address a login comes from, and
the page a locked-out login gets."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def client_address(request: HttpRequest) -> str:
    """The address a login counts against. Behind the TLS proxy (MISTUDIO_HTTPS=1) REMOTE_ADDR is
    the proxy's own, shared by every user, so one person's failures would lock everyone out: the
    address is then the one the proxy appended last to X-Forwarded-For (what a client sent stands
    to its left)."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.HTTPS and forwarded.strip():
        return forwarded.split(",")[-1].strip()[:45]  # 45: the longest textual IPv6 address
    return request.META.get("REMOTE_ADDR", "")


def lockout_message() -> str:
    minutes = settings.LOGIN_COOLOFF_MINUTES
    return (
        f"Too many failed logins for this account or from this address: logging in is paused. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}, or ask an administrator to "
        "clear the lock."
    )


def lockout_page(request: HttpRequest, *_: object) -> HttpResponse:
    """The login page again, with the reason instead of the form's errors (429: a browser shows
    it, a script sees the refusal). axes's sync and async middleware pass different arguments
    after the request, so none of them is read."""
    username = request.POST.get("username", "")[:150]
    form = AuthenticationForm(request, initial={"username": username})
    return render(
        request,
        "registration/login.html",
        {"form": form, "locked_out": lockout_message(), "next": request.POST.get("next", "")},
        status=429,
    )
