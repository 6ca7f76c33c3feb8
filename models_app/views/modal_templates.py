"""Extraction templates inside the extraction modal: save the form's settings as a template
("Load template" is the modal view with ?template=). The Templates tab manages them otherwise."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from templates_app.models import ExtractionTemplate
from templates_app.services import available_name, form_from_extraction, suggest_name

from ..forms.extractions import ExtractionForm
from ..models import LanguageModel

MODAL = "models_app/extract_modal.html"


@login_required
@require_POST
def save_as_template(request: HttpRequest, pk: int) -> HttpResponse:
    """First call: a name field holding a suggested name. Second call (with template_name):
    save, or say what is wrong. Without htmx the whole modal page comes back, form kept."""
    model = get_object_or_404(LanguageModel.objects.visible_to(request.user), pk=pk)
    name = request.POST.get("template_name")
    if name is None:
        layers = sorted(int(v) for v in request.POST.getlist("layers") if v.isdigit())
        samples = request.POST.get("max_samples", "")
        suggested = suggest_name(request.POST.getlist("hooks"), layers,
                                 int(samples) if samples.isdigit() else None, timezone.localtime())
        context = {"name": available_name(suggested)}
    else:
        form = form_from_extraction(request.POST, name)
        if form.is_valid():
            form.instance.owner = request.user
            context = {"saved": form.save()}
        else:
            errors = [(form[field].label if field in form.fields else "", field, messages)
                      for field, messages in form.errors.items()]
            context = {"name": name, "form_errors": errors}
    if request.htmx:
        return render(request, f"{MODAL}#save-template", {"m": model, **context})
    return render(request, MODAL, {"m": model, "form": ExtractionForm(request.POST, model=model, user=request.user),
                                   "templates": ExtractionTemplate.objects.visible_to(request.user),
                                   "save_template": context})
