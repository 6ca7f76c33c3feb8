"""Create, edit (with per-field validation as the user goes), duplicate, delete, favorite."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from models_app.views.htmx import HtmxHttpRequest

from .. import services
from ..forms import TemplateForm
from ..models import ExtractionTemplate
from .listing import PAGE, render_page

# htmx sends this header when one field changed: the view answers with that field's errors only,
# so the form validates as the user goes without a second URL (and without saving).
VALIDATE_HEADER = "X-Validate-Field"
CHANGED = "templates-changed"  # the list listens for this event and reloads with its filters


def _visible(request: HtmxHttpRequest, pk: int) -> ExtractionTemplate:
    return get_object_or_404(ExtractionTemplate.objects.visible_to(request.user), pk=pk)


def _refused(request: HtmxHttpRequest, template: ExtractionTemplate, message: str) -> HttpResponse:
    """Someone else's template: its card again, saying so (a plain request: the list, saying so)."""
    if not request.htmx:
        messages.error(request, message)
        return redirect("templates_app:index")
    return render(request, f"{PAGE}#template-card", {"template": template, "card_error": message})


def _form(
    request: HtmxHttpRequest,
    form: TemplateForm,
    editing: ExtractionTemplate | None = None,
    status: int = 200,
    **extra,
) -> HttpResponse:
    if request.htmx:  # htmx swaps only 2xx answers, so errors come back as 200 here
        return render(request, f"{PAGE}#template-form", {"form": form, "editing": editing, **extra})
    return render_page(request, form=form, editing=editing, status=status, **extra)


def _submit(request: HtmxHttpRequest, form: TemplateForm, editing: ExtractionTemplate | None) -> HttpResponse:
    if editing is None:
        form.instance.owner = request.user  # before validation: names are unique per owner's scope
    field = request.headers.get(VALIDATE_HEADER)
    if field:
        form.is_valid()
        if field not in form.fields:
            return HttpResponse(f"No field {field!r}.", status=400)
        return render(request, f"{PAGE}#field-errors", {"field": form[field]})
    if not form.is_valid():
        return _form(request, form, editing, status=422)
    template = form.save()
    if not request.htmx:
        messages.success(request, f"Saved template “{template.name}”.")
        return redirect("templates_app:index")
    # An edited card is swapped in place; a new one appears when the list reloads (its filters
    # and sort decide where it goes, or whether it shows at all).
    response = render(
        request,
        f"{PAGE}#template-saved",
        {
            "form": TemplateForm(),
            "template": template,
            "edited": editing is not None,
            "note": f"Saved “{template.name}”.",
        },
    )
    if editing is None:
        response["HX-Trigger"] = CHANGED
    return response


@login_required
@require_http_methods(["GET", "POST"])
def create(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _form(request, TemplateForm())
    return _submit(request, TemplateForm(request.POST), None)


@login_required
@require_http_methods(["GET", "POST"])
def edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    template = _visible(request, pk)
    if refused := template.change_refusal(request.user):
        return _refused(request, template, refused)
    if request.method == "GET":
        return _form(request, TemplateForm(instance=template), template)
    return _submit(request, TemplateForm(request.POST, instance=template), template)


@login_required
@require_POST
def duplicate(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    copy = services.duplicate(_visible(request, pk), owner=request.user)
    if not request.htmx:
        messages.success(request, f"Created “{copy.name}”.")
        return redirect("templates_app:edit", pk=copy.pk)
    # The copy opens in the form, since the next step is nearly always to change something.
    response = _form(request, TemplateForm(instance=copy), copy, note=f"Created “{copy.name}”.")
    response["HX-Trigger"] = CHANGED
    return response


@login_required
@require_POST
def delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    template = _visible(request, pk)
    if refused := template.change_refusal(request.user):
        return _refused(request, template, refused)
    name = template.name
    template.delete()
    if not request.htmx:
        messages.success(request, f"Deleted template “{name}”.")
        return redirect("templates_app:index")
    response = render(request, f"{PAGE}#deleted", {"name": name, "pk": pk})
    response["HX-Trigger"] = CHANGED  # the next page's first card moves up; an emptied list says so
    return response


@login_required
@require_POST
def favorite(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    template = _visible(request, pk)
    if refused := template.change_refusal(request.user):
        return _refused(request, template, refused)
    services.toggle_favorite(template)
    if not request.htmx:
        return redirect("templates_app:index")
    return render(request, f"{PAGE}#template-card", {"template": template})
