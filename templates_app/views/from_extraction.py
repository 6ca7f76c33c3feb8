"""Save the Extract Activations modal's settings as a template, inside the modal (its "Load
template" is the modal view with ?template=, in models_app/views/extract_modal.py)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from models_app.forms.extractions import ExtractionForm
from models_app.models import LanguageModel
from models_app.views.htmx import HtmxHttpRequest

from ..models import ExtractionTemplate
from ..services import available_name, form_from_extraction, suggest_name

MODAL = "models_app/extract_modal.html"


@login_required
@require_POST
def save_as_template(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """First call: a name field holding a suggested name. Second call (with template_name):
    save, or say what is wrong. Without htmx the whole modal page comes back, form kept."""
    model = get_object_or_404(LanguageModel.objects.visible_to(request.user), pk=pk)
    name = request.POST.get("template_name")
    if name is None:
        context = _suggestion(request.POST, request.user)
    else:
        form = form_from_extraction(request.POST, name)
        form.instance.owner = request.user  # before validation: names are unique per owner's scope
        if form.is_valid():
            context = {"saved": form.save()}
        else:
            context = {"name": name, "form_errors": _errors(form, form.errors)}
    if request.htmx:
        return render(request, f"{MODAL}#save-template", {"model": model, **context})
    return render(
        request,
        MODAL,
        {
            "model": model,
            "form": ExtractionForm(request.POST, model=model, user=request.user),
            "templates": ExtractionTemplate.objects.visible_to(request.user),
            "save_template": context,
        },
    )


def _suggestion(post, user) -> dict:
    """A name made from the posted hooks, layers and sample count, or what is wrong with those
    numbers, read by the same form (and messages) as saving. No layers yet is not wrong here."""
    form = form_from_extraction(post, "")
    form.is_valid()
    unreadable = [
        field
        for field in ("layer_indices", "max_samples")
        if field in form.errors and not form.has_error(field, "required")
    ]
    if unreadable:
        return {"name": "", "form_errors": _errors(form, unreadable)}
    data = form.cleaned_data
    suggested = suggest_name(
        post.getlist("hooks"), data.get("layer_indices") or [], data.get("max_samples"), timezone.localtime()
    )
    return {"name": available_name(suggested, user)}


def _errors(form, fields) -> list[tuple[str, str, list]]:
    return [
        (form[field].label if field in form.fields else "", field, form.errors[field]) for field in fields
    ]
