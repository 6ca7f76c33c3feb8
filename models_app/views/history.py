"""The Extractions tab: every extraction with filters, sort and pages, and the folders found on
disk that staff can import as extractions or delete."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from ..formatting import bytesize
from ..forms.history import ExtractionFilterForm, ImportFolderForm
from ..jobs.lost import check_lost_jobs
from ..models import Dataset, Extraction, LanguageModel
from ..services import found as found_services
from .htmx import HtmxHttpRequest, wants_partial

PAGE = "models_app/extractions.html"
PAGE_SIZE = 25


FOUND_STAFF_ONLY = "Only staff can import or delete folders found on disk."


def _may_manage_found(request: HtmxHttpRequest) -> bool:
    """Folders found on disk have no owner, and an import makes one whoever imports it: they are
    staff's to see, import and delete, in a shared studio as in a private one."""
    return request.user.is_staff


@login_required
@require_GET
def index(request: HtmxHttpRequest) -> HttpResponse:
    check_lost_jobs()
    filters = ExtractionFilterForm(request.GET or None, user=request.user)
    # Models and datasets are fetched for the page's rows afterwards (prefetch): joined into the
    # filtered, sorted query, the planner may join every row before it sorts.
    records = filters.apply(
        Extraction.objects.visible_to(request.user).defer("metadata").prefetch_related("model", "dataset")
    )
    page = Paginator(records, PAGE_SIZE).get_page(request.GET.get("page"))
    Extraction.attach_file_names(page.object_list)
    query = request.GET.copy()
    query.pop("page", None)
    context: dict[str, Any] = {"filters": filters, "page": page, "query": query.urlencode()}
    if wants_partial(request, target="extraction-list"):
        return render(request, f"{PAGE}#extraction-list", context)
    context["found"] = found_services.found_folders() if _may_manage_found(request) else []
    if any(not f.problem for f in context["found"]):
        context.update(
            models=LanguageModel.objects.visible_to(request.user).order_by("name"),
            datasets=Dataset.objects.visible_to(request.user).order_by("name"),
        )
    return render(request, PAGE, context)


@login_required
@require_POST
def import_found(request: HtmxHttpRequest) -> HttpResponse:
    if not _may_manage_found(request):
        messages.error(request, FOUND_STAFF_ONLY)
        return redirect("models_app:extractions")
    form = ImportFolderForm(request.POST, user=request.user)
    if form.is_valid():
        data = form.cleaned_data
        try:
            record = found_services.import_folder(
                data["folder"], data["model"], data["dataset"], owner=request.user
            )
        except found_services.Refused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Imported {data['folder']} as extraction {record.pk}.")
            return redirect("models_app:extraction", pk=record.pk)
    else:
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
    return redirect("models_app:extractions")


@login_required
@require_POST
def delete_found(request: HtmxHttpRequest) -> HttpResponse:
    if not _may_manage_found(request):
        messages.error(request, FOUND_STAFF_ONLY)
        return redirect("models_app:extractions")
    name = request.POST.get("folder", "")
    try:
        freed = found_services.delete_folder(name)
    except found_services.Refused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Deleted the folder {name} found on disk and freed {bytesize(freed)}.")
    return redirect("models_app:extractions")
