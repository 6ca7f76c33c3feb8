"""/api/v1/extractions/{id}/exports and /api/v1/exports/{id}: exports of a completed extraction
for SAE trainers: start one, follow it, cancel it, delete it, and download its files or its
whole folder as one .tar."""

from __future__ import annotations

from typing import Literal

from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema
from ninja.params import Path

from ..forms.exports import MAX_SEED, ExportForm
from ..jobs.lost import check_lost_jobs
from ..ml.exports import FORMATS
from ..models import ActivationExport, DeletionRefused, Extraction
from ..views.exports import archive_response
from .common import ERRORS, MAX_ID, Refused, cancelled, form_data, invalid, may_change, responses
from .extractions import FILE_RESPONSE
from .schemas import ExportOut, Freed

router = Router(tags=["exports"])
ExtractionId = Path(..., ge=1, le=MAX_ID)
ExportId = Path(..., ge=1, le=MAX_ID)


class ExportIn(Schema):
    format: Literal[FORMATS] = Field(  # type: ignore[valid-type]
        ...,
        description="saelens: a datasets folder SAELens trains from (use_cached_activations=True);"
        " tokens: a flat [real tokens, d] .npy per hook",
    )
    hooks: list[str] = Field([], examples=[["layer_3_mlp"]], description="Hook keys; empty: every hook")
    context_size: int | None = Field(None, ge=1, le=MAX_SEED, description="saelens: tokens per row")
    shuffle_seed: int | None = Field(None, ge=0, le=MAX_SEED, description="saelens: shuffle the rows")


def _visible_extractions(request: HttpRequest):
    return Extraction.objects.visible_to(request.user)


def _visible_exports(request: HttpRequest):
    return ActivationExport.objects.visible_to(request.user).select_related("owner", "extraction")


@router.get("/extractions/{extraction_id}/exports", response=responses(200, list[ExportOut]))
def list_exports(request: HttpRequest, extraction_id: int = ExtractionId):
    check_lost_jobs()
    extraction = get_object_or_404(_visible_extractions(request), pk=extraction_id)
    return list(_visible_exports(request).filter(extraction=extraction))


@router.post("/extractions/{extraction_id}/exports", response=responses(202, ExportOut))
def start(request: HttpRequest, body: ExportIn, extraction_id: int = ExtractionId):
    """Queue an export of a completed extraction; follow it with GET /exports/{id}."""
    extraction = get_object_or_404(_visible_extractions(request), pk=extraction_id)
    form = ExportForm(form_data(body.dict()), extraction=extraction)
    if not form.is_valid():
        raise invalid(form)
    return 202, form.create(owner=request.user)


@router.get("/exports/{export_id}", response=responses(200, ExportOut))
def get_export(request: HttpRequest, export_id: int = ExportId):
    check_lost_jobs()
    return get_object_or_404(_visible_exports(request), pk=export_id)


@router.post("/exports/{export_id}/cancel", response=responses(200, ExportOut))
def cancel(request: HttpRequest, export_id: int = ExportId):
    return cancelled(get_object_or_404(_visible_exports(request), pk=export_id), request.user)


@router.delete("/exports/{export_id}", response=responses(200, Freed))
def delete(request: HttpRequest, export_id: int = ExportId):
    """Delete the record and its folder (a running export must be cancelled first)."""
    record = get_object_or_404(_visible_exports(request), pk=export_id)
    may_change(record, request.user)
    try:
        return {"freed_bytes": record.delete_with_files(request.user)}
    except DeletionRefused as exc:
        raise Refused(409, exc.message) from None


@router.get(
    "/exports/{export_id}/files/{name}", response=ERRORS, url_name="export_file", openapi_extra=FILE_RESPONSE
)
def download_file(request: HttpRequest, name: str, export_id: int = ExportId):
    """One file of a completed export."""
    path = get_object_or_404(_visible_exports(request), pk=export_id).file_path(name)
    if path is None:
        raise Http404("No such file in this export.")
    return FileResponse(
        open(path, "rb"), as_attachment=True, filename=name, content_type="application/octet-stream"
    )


ARCHIVE_RESPONSE = {
    "responses": {
        200: {
            "description": "The export's folder as an uncompressed .tar, streamed",
            "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}},
        }
    }
}


@router.get(
    "/exports/{export_id}/archive", response=ERRORS, url_name="export_archive", openapi_extra=ARCHIVE_RESPONSE
)
def download_archive(request: HttpRequest, export_id: int = ExportId):
    """The whole folder of a completed export, as one .tar (`tar xf` gives the folder back)."""
    record = get_object_or_404(_visible_exports(request), pk=export_id)
    if not record.files():
        raise Http404("This export has no files.")
    return archive_response(record)
