"""Export templates as a JSON download; import a JSON file with a duplicate-name policy."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from models_app.numbers import whole_number_in
from models_app.views.htmx import HtmxHttpRequest

from .. import import_export
from ..forms import MAX_IMPORT_BYTES, ImportForm, size_refusal
from ..models import ExtractionTemplate
from .editing import CHANGED
from .listing import PAGE, render_page


@login_required
@require_GET
def export(request: HtmxHttpRequest) -> HttpResponse:
    queryset = ExtractionTemplate.objects.visible_to(request.user).order_by("pk")
    if request.GET.get("scope") == "selected":
        ids = [i for i in map(whole_number_in, request.GET.getlist("ids")) if i is not None]
        if not ids:
            messages.error(request, "Tick the templates to export first, or choose Export all.")
            return redirect("templates_app:index")
        queryset = queryset.filter(pk__in=ids)
    return import_export.export_response(queryset)


def _result(request: HtmxHttpRequest, form: ImportForm, status: int = 200, **result) -> HttpResponse:
    if request.htmx:  # 200 so htmx swaps the refusal in
        return render(request, f"{PAGE}#import-form", {"import_form": form, **result})
    return render_page(request, import_form=form, status=status, **result)


@login_required
@require_POST
def import_file(request: HtmxHttpRequest) -> HttpResponse:
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > MAX_IMPORT_BYTES + 64 * 1024:  # refused before the body is read
        return _result(request, ImportForm(), status=413, problems=[size_refusal(declared)])
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _result(request, form, status=422)
    policy = form.cleaned_data["on_duplicate"]
    fresh = ImportForm(initial={"on_duplicate": policy})
    try:
        summary = import_export.import_payload(form.cleaned_data["file"].read(), policy, user=request.user)
    except import_export.ImportRefused as exc:
        return _result(
            request, fresh, status=422, problems=exc.problems, file_name=form.cleaned_data["file"].name
        )
    response = _result(request, fresh, summary=summary, file_name=form.cleaned_data["file"].name)
    response["HX-Trigger"] = CHANGED
    return response
