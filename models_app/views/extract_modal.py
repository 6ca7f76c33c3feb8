"""The Extract Activations modal on a model card: the form (a template loaded into it), its live
estimate, and starting the extraction."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from templates_app.models import ExtractionTemplate
from templates_app.services import extraction_initial

from ..forms.extractions import ExtractionForm
from ..models import LanguageModel
from ..numbers import whole_number_in
from ..services import estimate as estimates
from .htmx import HtmxHttpRequest, render_page_or_partial

MODAL = "models_app/extract_modal.html"


def _model(request: HtmxHttpRequest, pk: int) -> LanguageModel:
    return get_object_or_404(LanguageModel.objects.visible_to(request.user), pk=pk)


@login_required
@require_GET
def modal(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    model = _model(request, pk)
    initial: dict[str, Any] = {"hooks": ["residual"], "dataset": request.GET.get("dataset")}
    context: dict[str, Any] = {}
    templates = ExtractionTemplate.objects.visible_to(request.user)
    chosen = templates.filter(pk=whole_number_in(request.GET.get("template"))).first()
    if chosen is not None:
        settings_, too_deep = extraction_initial(chosen, model.num_layers)
        initial.update(settings_)
        context.update(loaded=chosen, too_deep=too_deep)
    form = ExtractionForm(model=model, initial=initial, user=request.user)
    return render_page_or_partial(
        request, MODAL, "modal", {"model": model, "form": form, "templates": templates, **context}
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
                "model": model,
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
        {"model": model, "extraction": record},
    )
