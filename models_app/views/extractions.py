"""One extraction: its page (live status, statistics, charts, files), its row in the list, top
examples of a neuron, its files for download, and what can be done to it: cancel, retry, delete."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from ..formatting import bytesize
from ..forms.history import NeuronForm, ThresholdForm
from ..jobs.lost import check_lost_jobs
from ..models import DeletionRefused, Extraction
from ..services import examples as example_services
from ..services import extractions as extraction_services
from ..services import neurons as neuron_services
from .htmx import HtmxHttpRequest, render_page_or_partial

DETAIL = "models_app/extraction.html"
LIST = "models_app/extractions.html"
EXAMPLES = "models_app/examples.html"
NEURON = "models_app/neuron.html"


def _visible(request: HtmxHttpRequest):
    return Extraction.objects.visible_to(request.user)


@login_required
@require_GET
def detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    check_lost_jobs()
    record = get_object_or_404(
        Extraction.objects.visible_to(request.user).select_related("model", "dataset"), pk=pk
    )
    return render_page_or_partial(request, DETAIL, "extraction-status", {"extraction": record})


@login_required
@require_GET
def row(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(_visible(request).select_related("model", "dataset"), pk=pk)
    return render(request, f"{LIST}#extraction-row", {"extraction": record})


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
    context = {"extraction": record, "form": form}
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
@require_GET
def neuron(request: HtmxHttpRequest, pk: int, key: str, index: int) -> HttpResponse:
    """One neuron of one (layer, hook): density above a threshold, its histogram, examples from
    each band of its range, the neurons most correlated with it, and it in the other formats."""
    record = get_object_or_404(_visible(request).select_related("model", "dataset"), pk=pk)
    if key not in record.statistics:
        raise Http404("No such layer and hook in this extraction.")
    form = ThresholdForm(request.GET or None)
    context = {
        "extraction": record,
        "key": key,
        "index": index,
        "form": form,
        "stats": record.statistics[key],
    }
    try:
        context.update(neuron_services.neuron_page(record, key, index, form.value(), request.user))
    except example_services.ExamplesUnavailable as exc:
        context["unavailable"] = str(exc)
    return render_page_or_partial(request, NEURON, "neuron-figures", context, target="neuron-figures")


@login_required
@require_POST
def cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(Extraction.objects.visible_to(request.user), pk=pk)
    refused = record.change_refusal(request.user) or record.request_cancel()
    return _status(request, record, refused)


@login_required
@require_POST
def retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(Extraction.objects.visible_to(request.user), pk=pk)
    if refused := record.change_refusal(request.user):
        return _status(request, record, refused)
    if not record.can_retry:
        return _status(request, record, "Only a failed or cancelled extraction can be retried.")
    extraction_services.retry(record)
    record.refresh_from_db()
    return _status(request, record)


@login_required
@require_POST
def delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(_visible(request), pk=pk)
    try:
        freed = record.delete_with_files(request.user)
    except DeletionRefused as exc:
        if request.htmx:
            return render(request, f"{LIST}#refused", {"message": exc.message})
        messages.error(request, exc.message)
        return redirect("models_app:extraction", pk=pk)
    messages.success(request, f"Deleted extraction {pk} and freed {bytesize(freed)}.")
    if request.htmx:  # the page showed the record: go to the list, where the message is shown
        return HttpResponseClientRedirect(reverse("models_app:extractions"))
    return redirect("models_app:extractions")


def _status(request: HtmxHttpRequest, record: Extraction, error: str | None = None) -> HttpResponse:
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("models_app:extraction", pk=record.pk)
    if request.htmx.target == f"model-{record.model_id}":  # asked from its model's card
        from .models import card_response

        return card_response(request, record.model, card_error=error)
    return render(request, f"{DETAIL}#extraction-status", {"extraction": record, "status_error": error})
