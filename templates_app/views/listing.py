"""The Templates tab page and its list: search, favorites filter, sort, 20 per page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from models_app.views.htmx import HtmxHttpRequest, wants_partial

from ..forms import ImportForm, TemplateFilterForm, TemplateForm
from ..models import ExtractionTemplate

PAGE = "templates_app/index.html"
PAGE_SIZE = 20


def list_context(request: HtmxHttpRequest) -> dict:
    filters = TemplateFilterForm(request.GET)
    visible = ExtractionTemplate.objects.visible_to(request.user)
    page = Paginator(filters.apply(visible.select_related("owner")), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    query = request.GET.copy()
    query.pop("page", None)
    return {"filters": filters, "page": page, "query": query.urlencode(), "total": visible.count()}


def render_page(
    request: HtmxHttpRequest,
    *,
    form: TemplateForm | None = None,
    editing: ExtractionTemplate | None = None,
    import_form: ImportForm | None = None,
    status: int = 200,
    **extra,
) -> HttpResponse:
    """The whole page, for plain requests and for a form that failed without htmx."""
    context = {
        **list_context(request),
        "form": form or TemplateForm(),
        "editing": editing,
        "import_form": import_form or ImportForm(),
        **extra,
    }
    return render(request, PAGE, context, status=status)


@login_required
@require_GET
def index(request: HtmxHttpRequest) -> HttpResponse:
    if wants_partial(request, target="template-list"):
        return render(request, f"{PAGE}#template-list", list_context(request))
    return render_page(request)
