"""Comparisons of one model's formats on pages: started from an extraction's page ("Compare
with…", its comparable extractions ticked) or from the Extractions list (two or more ticked, the
most precise format as the reference), followed live on their own page, cancelled, deleted."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from ..forms.comparisons import ComparisonForm
from ..jobs.lost import check_lost_jobs
from ..models import Comparison, DeletionRefused, Extraction
from ..models.comparison import precision_rank
from .htmx import HtmxHttpRequest, render_page_or_partial

PAGE = "models_app/comparison.html"
SECTION = "models_app/extraction.html#comparisons"


def _visible(request: HtmxHttpRequest):
    return Comparison.objects.visible_to(request.user).select_related("base__model", "base__dataset")


def _refusal(form: ComparisonForm) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


def _section(request: HtmxHttpRequest, extraction: Extraction, error: str = "") -> HttpResponse:
    """The extraction page's comparisons section (htmx), or the page itself with the message."""
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("models_app:extraction", pk=extraction.pk)
    context = {"extraction": extraction, "comparison_error": error}
    return render(request, SECTION, context, status=422 if error else 200)


@login_required
@require_POST
def start(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """From an extraction's page: it is the reference, the ticked extractions are compared."""
    base = get_object_or_404(Extraction.objects.visible_to(request.user).select_related("model"), pk=pk)
    form = ComparisonForm(request.POST, base=base, user=request.user)
    if not form.is_valid():
        if not request.POST.getlist("others"):
            return _section(request, base, "Tick one or more extractions to compare with this one.")
        return _section(request, base, _refusal(form))
    form.create(owner=request.user)
    return _section(request, base)


@login_required
@require_GET
def candidates(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The "Compare with…" form of an extraction's page, for its viewer (a live update brings the
    section without it)."""
    base = get_object_or_404(Extraction.objects.visible_to(request.user).select_related("model"), pk=pk)
    return render(request, "models_app/extraction.html#comparison-candidates", {"extraction": base})


@login_required
@require_POST
def start_from_list(request: HtmxHttpRequest) -> HttpResponse:
    """From the Extractions list: the ticked extraction in the most precise format (the oldest
    of equals) is the reference, the others are compared with it."""
    ids = [int(value) for value in request.POST.getlist("extractions") if value.isascii() and value.isdigit()]
    chosen = sorted(
        Extraction.objects.visible_to(request.user).select_related("model").filter(pk__in=ids),
        key=precision_rank,
    )
    if len(chosen) < 2:
        messages.error(request, "Tick two or more extractions to compare.")
        return redirect("models_app:extractions")
    base, *others = chosen
    form = ComparisonForm({"others": [o.pk for o in others]}, base=base, user=request.user)
    if not form.is_valid():
        messages.error(request, _refusal(form))
        return redirect("models_app:extractions")
    record = form.create(owner=request.user)
    return redirect("models_app:comparison", pk=record.pk)


@login_required
@require_GET
def detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    check_lost_jobs()
    record = get_object_or_404(_visible(request), pk=pk)
    return render_page_or_partial(request, PAGE, "comparison-status", {"comparison": record})


@login_required
@require_POST
def cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(_visible(request), pk=pk)
    refused = record.change_refusal(request.user) or record.request_cancel() or ""
    if request.htmx and request.htmx.target == f"comparison-{record.pk}-status":  # its own page
        context = {"comparison": record, "status_error": refused}
        return render(request, f"{PAGE}#comparison-status", context)
    return _section(request, record.base, refused)


@login_required
@require_POST
def delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(_visible(request), pk=pk)
    base = record.base
    try:
        record.delete_record(request.user)
    except DeletionRefused as exc:
        if not request.htmx:
            messages.error(request, exc.message)
            return redirect("models_app:comparison", pk=pk)
        return _section(request, base, exc.message)
    if not request.htmx:  # from its own page: back to the reference extraction's
        messages.success(request, f"Deleted comparison {pk}.")
    return _section(request, base)
