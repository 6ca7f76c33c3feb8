"""An extraction's exports, on its page: start one, follow it (live), cancel it, delete it, and
download its files one by one or its whole folder as one .tar streamed from disk."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from ..forms.exports import ExportForm
from ..models import ActivationExport, DeletionRefused, Extraction
from ..services.archive import tar_size, tar_stream
from .htmx import HtmxHttpRequest

SECTION = "models_app/extraction.html#exports"


def _visible_exports(request: HtmxHttpRequest):
    return ActivationExport.objects.visible_to(request.user).select_related("extraction")


def _section(
    request: HtmxHttpRequest, extraction: Extraction, form: ExportForm | None = None, error: str = ""
) -> HttpResponse:
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("models_app:extraction", pk=extraction.pk)
    context = {"extraction": extraction, "export_form": form, "export_error": error}
    return render(request, SECTION, context, status=422 if form is not None and form.errors else 200)


@login_required
@require_POST
def start(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    extraction = get_object_or_404(Extraction.objects.visible_to(request.user), pk=pk)
    form = ExportForm(request.POST, extraction=extraction)
    if not form.is_valid():
        return _section(request, extraction, form)
    form.create(owner=request.user)
    return _section(request, extraction)


@login_required
@require_POST
def cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    export = get_object_or_404(_visible_exports(request), pk=pk)
    refused = export.change_refusal(request.user) or export.request_cancel()
    return _section(request, export.extraction, error=refused or "")


@login_required
@require_POST
def delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    export = get_object_or_404(_visible_exports(request), pk=pk)
    try:
        export.delete_with_files(request.user)
    except DeletionRefused as exc:
        return _section(request, export.extraction, error=exc.message)
    return _section(request, export.extraction)


@login_required
@require_GET
def download_file(request: HtmxHttpRequest, pk: int, name: str) -> FileResponse:
    export = get_object_or_404(_visible_exports(request), pk=pk)
    path = export.file_path(name)
    if path is None:
        raise Http404("No such file in this export.")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=name)


@login_required
@require_GET
def download_archive(request: HtmxHttpRequest, pk: int) -> StreamingHttpResponse:
    """The whole folder as an uncompressed .tar (activations hardly compress), read from disk a
    block at a time: memory stays bounded whatever the export's size."""
    export = get_object_or_404(_visible_exports(request), pk=pk)
    if not export.files():
        raise Http404("This export has no files.")
    return archive_response(export)


def archive_response(export: ActivationExport) -> StreamingHttpResponse:
    name = export.folder.name
    files = [export.folder / file_name for file_name, _size in export.files()]
    response = StreamingHttpResponse(tar_stream(files, name), content_type="application/x-tar")
    response["Content-Length"] = str(tar_size(files, name))
    response["Content-Disposition"] = f'attachment; filename="{name}.tar"'
    return response
