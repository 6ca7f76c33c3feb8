"""The Extractions tab: every extraction with filters and sort, an extraction's files and top
examples, deleting one, and importing or deleting a folder found on disk."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from ..formatting import bytesize
from ..forms.history import ExtractionFilterForm, ImportFolderForm, NeuronForm
from ..models import Dataset, Extraction, LanguageModel
from ..services import examples as example_services
from ..services import found as found_services
from ..services.models import check_lost_jobs
from .htmx import HtmxHttpRequest, render_page_or_partial, wants_partial

PAGE = "models_app/extractions.html"
EXAMPLES = "models_app/examples.html"
PAGE_SIZE = 25


FOUND_STAFF_ONLY = "Only staff can import or delete folders found on disk."


def _may_manage_found(request: HtmxHttpRequest) -> bool:
    """Folders found on disk have no owner, and an import makes one whoever imports it: they are
    staff's to see, import and delete, in a shared studio as in a private one."""
    return request.user.is_staff


def _visible(request: HtmxHttpRequest):
    return Extraction.objects.visible_to(request.user)


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
    context = {"filters": filters, "page": page, "query": query.urlencode()}
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
@require_GET
def row(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(_visible(request).select_related("model", "dataset"), pk=pk)
    return render(request, f"{PAGE}#extraction-row", {"x": record})


@login_required
@require_POST
def delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(_visible(request), pk=pk)
    refusal = record.change_refusal(request.user)
    freed = None if refusal else record.delete_with_files()
    if freed is None:
        refusal = refusal or "This extraction is running: cancel it first."
        if request.htmx:
            return render(request, f"{PAGE}#refused", {"message": refusal})
        messages.error(request, refusal)
        return redirect("models_app:extraction", pk=pk)
    messages.success(request, f"Deleted extraction {pk} and freed {bytesize(freed)}.")
    if request.htmx:  # the page showed the record: go to the list, where the message is shown
        return HttpResponseClientRedirect(reverse("models_app:extractions"))
    return redirect("models_app:extractions")


@login_required
@require_GET
def download(request: HtmxHttpRequest, pk: int, name: str) -> FileResponse:
    record = get_object_or_404(_visible(request), pk=pk)
    path = record.file_path(name)
    if path is None:
        raise Http404("No such file in this extraction.")
    # Saved under its own name: the one metadata.json lists and the page's numpy snippet opens.
    return FileResponse(open(path, "rb"), as_attachment=True, filename=name)


@login_required
@require_GET
def examples(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(_visible(request).select_related("model"), pk=pk)
    form = NeuronForm(request.GET or None, extraction=record)
    context = {"x": record, "form": form}
    if form.is_valid():
        data = form.cleaned_data
        try:
            if data["neuron"] is None:
                context["strongest"] = example_services.strongest_neurons(record, data["target"])
            else:
                context["examples"] = example_services.top_examples(
                    record, data["target"], data["neuron"], data["prefix"], data["suffix"]
                )
        except example_services.ExamplesUnavailable as exc:
            context["unavailable"] = str(exc)
    return render_page_or_partial(request, EXAMPLES, "examples", context, target="examples")


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
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
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
