"""Answers for failures no single view can show where the user is looking."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import reswap

from .jobs.queue import QueueUnavailable


class QueueUnavailableMiddleware:
    """A job the queue could not take (Redis down) has already been failed with the reason
    (JobRecord.enqueue); the request that started it says so: a toast for htmx, leaving what the
    user was doing in place, or a message on the page the browser came from."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, QueueUnavailable):
            return None
        if getattr(request, "htmx", False):
            return reswap(
                render(request, "toast.html", {"message": exception.message, "warning": True}), "none"
            )
        messages.error(request, exception.message)
        back = request.headers.get("Referer", "")
        safe = url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure())
        return redirect(back if safe else "models_app:index")
