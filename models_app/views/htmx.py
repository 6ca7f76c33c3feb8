"""How a view answers htmx: a page's `{% partialdef %}` fragment for htmx, the whole page otherwise.

Every page owns its fragments, so one URL serves both: a plain request (a link opened in a new tab,
a form posted without JavaScript) gets the page, and htmx gets only the part it swaps in.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """A request as HtmxMiddleware leaves it (`request.htmx` is falsy for a plain request)."""

    htmx: HtmxDetails


def wants_partial(request: HtmxHttpRequest, target: str | None = None) -> bool:
    """Whether to answer with a fragment: an htmx request, aimed at the element `target` when one
    is named (the same URL also serves htmx requests that swap something else, or the whole page)."""
    return bool(request.htmx) and (target is None or request.htmx.target == target)


def render_page_or_partial(
    request: HtmxHttpRequest,
    page: str,
    partial: str,
    context: dict | None = None,
    *,
    target: str | None = None,
    status: int = 200,
) -> HttpResponse:
    """`page#partial` when `wants_partial(request, target)`, else the whole `page`."""
    name = f"{page}#{partial}" if wants_partial(request, target) else page
    return render(request, name, context, status=status)
