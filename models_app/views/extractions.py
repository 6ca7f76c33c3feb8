"""The extraction modal (from a model card), its live estimate, and the extraction page."""
from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from templates_app.models import ExtractionTemplate
from templates_app.services import extraction_initial

from ..forms.extractions import ExtractionForm
from ..services import extractions as extraction_services, models as model_services
from ..services.estimate import estimate, real_token_share
from ..ml import hub
from ..ml.architecture import dimensions
from ..ml import quantization as quant
from ..models import Dataset, Extraction, LanguageModel

MODAL = "models_app/extract_modal.html"
DETAIL = "models_app/extraction.html"


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _model(request: HttpRequest, pk: int) -> LanguageModel:
    return get_object_or_404(LanguageModel.objects.visible_to(request.user), pk=pk)


def _estimate_for(model: LanguageModel, data, user) -> object | None:
    dataset = Dataset.objects.visible_to(user).filter(pk=_int(data.get("dataset"), 0), status="ready").first()
    if dataset is None:
        return None
    max_samples = _int(data.get("max_samples"), 0)
    samples = min(dataset.num_samples, max_samples) if max_samples > 0 else dataset.num_samples
    memory = model.memory_footprint_bytes or quant.estimate_memory_bytes(model.params_count or 0,
                                                                         model.quantization)
    context = max(_int(data.get("context_length"), 128), 1)
    share, source = real_token_share(model, dataset, context)
    return estimate(samples=samples, layers=len(data.getlist("layers")), hooks=len(data.getlist("hooks")),
                    context=context, real_share=share, share_source=source,
                    hidden=int(dimensions(model.architecture_config).get("hidden_size") or 0),
                    dtype=data.get("dtype") or "float16", batch_size=max(_int(data.get("batch_size"), 8), 1),
                    top_k=max(_int(data.get("top_k"), 10), 1), model_memory=memory,
                    free_bytes=hub.free_disk_bytes(settings.ACTIVATIONS_DIR))


@login_required
@require_GET
def modal(request: HttpRequest, pk: int) -> HttpResponse:
    model = _model(request, pk)
    initial, context = {"hooks": ["residual"], "dataset": request.GET.get("dataset")}, {}
    chosen = ExtractionTemplate.objects.visible_to(request.user).filter(pk=_int(request.GET.get("template"), 0)).first()
    if chosen is not None:
        settings_, too_deep = extraction_initial(chosen, ExtractionForm.layer_count(model))
        initial.update(settings_)
        context.update(loaded=chosen, too_deep=too_deep)
    form = ExtractionForm(model=model, initial=initial, user=request.user)
    template = f"{MODAL}#modal" if request.htmx else MODAL
    return render(request, template, {"m": model, "form": form,
                                      "templates": ExtractionTemplate.objects.visible_to(request.user),
                                      **context})


@login_required
@require_POST
def estimate_view(request: HttpRequest, pk: int) -> HttpResponse:
    model = _model(request, pk)
    return render(request, f"{MODAL}#estimate", {"est": _estimate_for(model, request.POST, request.user)})


@login_required
@require_POST
def start(request: HttpRequest, pk: int) -> HttpResponse:
    model = _model(request, pk)
    form = ExtractionForm(request.POST, model=model, user=request.user)
    est = _estimate_for(model, request.POST, request.user)
    if form.is_valid() and est is not None and est.refused:
        form.add_error(None, "Not enough disk space for this extraction: reduce samples, layers, "
                             "hook types or context length, or use float16.")
    if not form.is_valid():
        template = f"{MODAL}#modal" if request.htmx else MODAL
        return render(request, template, {"m": model, "form": form, "est": est,
                                          "templates": ExtractionTemplate.objects.visible_to(request.user)},
                      status=200 if request.htmx else 422)
    record = extraction_services.create(**form.extraction_fields(), owner=request.user)
    if not request.htmx:
        return redirect("models_app:extraction", pk=record.pk)
    return render(request, f"{MODAL}#started", {"m": model, "x": record,
                                                "formats": quant.FORMATS, "format_labels": quant.LABELS})


@login_required
@require_GET
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    model_services.fail_stale_jobs()
    record = get_object_or_404(Extraction.objects.visible_to(request.user).select_related("model", "dataset"),
                               pk=pk)
    template = f"{DETAIL}#extraction-status" if request.htmx else DETAIL
    return render(request, template, {"x": record})


@login_required
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(Extraction.objects.visible_to(request.user), pk=pk)
    refused = record.change_refusal(request.user) or record.request_cancel()
    return _status(request, record, refused)


@login_required
@require_POST
def retry(request: HttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(Extraction.objects.visible_to(request.user), pk=pk)
    if refused := record.change_refusal(request.user):
        return _status(request, record, refused)
    if not record.can_retry:
        return _status(request, record, "Only a failed or cancelled extraction can be retried.")
    extraction_services.retry(record)
    record.refresh_from_db()
    return _status(request, record)


def _status(request: HttpRequest, record: Extraction, error: str | None = None) -> HttpResponse:
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("models_app:extraction", pk=record.pk)
    return render(request, f"{DETAIL}#extraction-status", {"x": record, "status_error": error})
