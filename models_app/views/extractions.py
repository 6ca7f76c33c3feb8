"""The extraction modal (from a model card), its live estimate, and the extraction page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from templates_app.models import ExtractionTemplate
from templates_app.services import extraction_initial

from ..forms.extractions import ExtractionForm
from ..models import Extraction, LanguageModel
from ..numbers import whole_number_in
from ..services import estimate as estimates
from ..services import extractions as extraction_services
from ..services import models as model_services
from .htmx import HtmxHttpRequest, render_page_or_partial

MODAL = "models_app/extract_modal.html"
DETAIL = "models_app/extraction.html"


def _model(request: HtmxHttpRequest, pk: int) -> LanguageModel:
    return get_object_or_404(LanguageModel.objects.visible_to(request.user), pk=pk)


@login_required
@require_GET
def modal(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    model = _model(request, pk)
    initial, context = {"hooks": ["residual"], "dataset": request.GET.get("dataset")}, {}
    templates = ExtractionTemplate.objects.visible_to(request.user)
    chosen = templates.filter(pk=whole_number_in(request.GET.get("template"))).first()
    if chosen is not None:
        settings_, too_deep = extraction_initial(chosen, model.num_layers)
        initial.update(settings_)
        context.update(loaded=chosen, too_deep=too_deep)
    form = ExtractionForm(model=model, initial=initial, user=request.user)
    return render_page_or_partial(
        request, MODAL, "modal", {"m": model, "form": form, "templates": templates, **context}
    )


@login_required
@require_POST
def estimate_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Validated as the submit is, so it never shows figures for settings the submit refuses."""
    model = _model(request, pk)
    form = ExtractionForm(request.POST, model=model, user=request.user)
    live = estimates.live(form, attempted=bool(request.POST.get("attempted")))
    return render(request, f"{MODAL}#estimate-answer", {"form": form, **live})


@login_required
@require_POST
def start(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    model = _model(request, pk)
    form = ExtractionForm(request.POST, model=model, user=request.user)
    if not form.is_valid():
        return render_page_or_partial(
            request,
            MODAL,
            "modal",
            {
                "m": model,
                "form": form,
                "est": form.estimate,
                "templates": ExtractionTemplate.objects.visible_to(request.user),
            },
            status=200 if request.htmx else 422,
        )
    record = form.create(owner=request.user)
    if not request.htmx:
        return redirect("models_app:extraction", pk=record.pk)
    LanguageModel.summarize_extractions([model], request.user)  # the card now shows this one
    return render(
        request,
        f"{MODAL}#started",
        {"m": model, "x": record},
    )


@login_required
@require_GET
def detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    model_services.check_lost_jobs()
    record = get_object_or_404(
        Extraction.objects.visible_to(request.user).select_related("model", "dataset"), pk=pk
    )
    return render_page_or_partial(request, DETAIL, "extraction-status", {"x": record})


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


def _status(request: HtmxHttpRequest, record: Extraction, error: str | None = None) -> HttpResponse:
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("models_app:extraction", pk=record.pk)
    if request.htmx.target == f"model-{record.model_id}":  # asked from its model's card
        from .models import card_response

        return card_response(request, record.model, card_error=error)
    return render(request, f"{DETAIL}#extraction-status", {"x": record, "status_error": error})
