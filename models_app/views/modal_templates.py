"""Extraction templates inside the extraction modal: load one into the form, or save the form's
settings as one. The Templates tab (templates_app) manages them otherwise."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from templates_app.forms import TemplateForm
from templates_app.models import ExtractionTemplate
from templates_app.services import available_name, suggest_name

from ..models import LanguageModel

MODAL = "models_app/extract_modal.html"
# Extraction form field -> template field.
FIELD_MAP = {"batch_size": "batch_size", "micro_batch_size": "micro_batch_size",
             "max_samples": "max_samples", "context_length": "context_length", "top_k": "top_k_examples",
             "context_prefix_tokens": "context_prefix_tokens",
             "context_suffix_tokens": "context_suffix_tokens", "dtype": "dtype"}


def initial_from(template: ExtractionTemplate, num_layers: int) -> tuple[dict, list[int]]:
    """The modal's initial values from a template, and the template's layers this model lacks
    (reported in the modal rather than silently dropped)."""
    initial = template.extraction_settings()
    initial["layers"] = [i for i in template.layer_indices if i < num_layers]
    return initial, [i for i in template.layer_indices if i >= num_layers]


def _template_form(post, name: str) -> TemplateForm:
    data = {"name": name, "layer_indices": [int(v) for v in post.getlist("layers") if v.isdigit()],
            "hook_types": post.getlist("hooks")}
    for field, template_field in FIELD_MAP.items():
        value = post.get(field, "")
        data[template_field] = None if value == "" and field in ("micro_batch_size", "max_samples") else value
    return TemplateForm(data)


@login_required
@require_POST
def save_as_template(request: HttpRequest, pk: int) -> HttpResponse:
    """First call: a name field with a suggested name. Second call (with template_name): save,
    or say at the field what is wrong."""
    model = get_object_or_404(LanguageModel, pk=pk)
    name = request.POST.get("template_name")
    if name is None:
        layers = sorted(int(v) for v in request.POST.getlist("layers") if v.isdigit())
        samples = request.POST.get("max_samples", "")
        samples = int(samples) if samples.isdigit() else None
        suggested = suggest_name(request.POST.getlist("hooks"), layers, samples, timezone.localtime())
        return render(request, f"{MODAL}#save-template", {"m": model, "name": available_name(suggested)})
    form = _template_form(request.POST, name)
    if not form.is_valid():
        return render(request, f"{MODAL}#save-template", {"m": model, "name": name, "form_errors": form.errors})
    template = form.save()
    return render(request, f"{MODAL}#save-template", {"m": model, "saved": template})
