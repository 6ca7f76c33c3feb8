"""/api/v1/models: the Models page for scripts (list, preview, download, rename, cancel,
retry, delete, architecture)."""

from __future__ import annotations

from typing import Literal, cast, get_args

from django.conf import settings
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema
from ninja.params import Path

from ..forms.downloads import DownloadForm, PreviewForm, RestartForm
from ..forms.models import SORTS, ModelFilterForm, RenameForm
from ..jobs.lost import check_lost_jobs
from ..ml import hub
from ..ml import quantization as quant
from ..models import DeletionRefused, LanguageModel
from ..services import downloads
from .common import MAX_ID, Paging, Refused, cancelled, form_data, invalid, may_change, page_of, responses
from .schemas import ArchitectureOut, Freed, ModelOut, ModelPage, PreviewOut

router = Router(tags=["models"])
# Spelled out for the schema and the type checker; the assertion keeps it equal to the formats.
Format = Literal["fp32", "fp16", "q8", "q4", "q2"]
assert get_args(Format) == quant.FORMATS
ModelId = Path(..., ge=1, le=MAX_ID)


class ModelFilters(Paging):
    q: str = Field("", description="Part of the name or repository id")
    status: str = ""
    quantization: str = ""
    architecture: str = ""
    sort: Literal[tuple(SORTS)] = "newest"  # type: ignore[valid-type]


class RepoIn(Schema):
    repo_id: str = Field(..., examples=["TinyLlama/TinyLlama-1.1B-Chat-v1.0"])
    revision: str = "main"
    token: str | None = Field(
        None, description="A Hub access token for a gated repository; used for this request (and job) only"
    )


class DownloadIn(RepoIn):
    quantization: Format = cast(Format, quant.DEFAULT_FORMAT)  # one of the formats, as asserted above
    trust_remote_code: bool = False


class RenameIn(Schema):
    name: str


class RetryIn(Schema):
    quantization: Format | None = Field(None, description="Another format; empty: the same one")
    token: str | None = None


def _visible(request: HttpRequest, model_id: int) -> LanguageModel:
    return get_object_or_404(
        LanguageModel.objects.visible_to(request.user).select_related("owner"), pk=model_id
    )


@router.get("", response=responses(200, ModelPage))
def list_models(request: HttpRequest, filters: Query[ModelFilters]):
    check_lost_jobs()
    form = ModelFilterForm(form_data(filters.dict(exclude={"page", "page_size"})), user=request.user)
    if not form.is_valid():
        raise invalid(form)
    records = form.apply(LanguageModel.objects.visible_to(request.user).select_related("owner"))
    return page_of(records, filters.page, filters.page_size)


@router.post("/preview", response=responses(200, PreviewOut))
def preview(request: HttpRequest, body: RepoIn):
    """Size, parameters, memory per format and gating, before anything is downloaded."""
    form = PreviewForm(form_data({**body.dict(), "quantization": quant.DEFAULT_FORMAT}), user=request.user)
    if not form.is_valid():
        raise invalid(form)
    pre = form.preflight
    assert pre is not None  # a valid form has run its pre-flight
    return {
        "repo_id": pre.repo_id,
        "revision": pre.revision,
        "commit_sha": pre.commit_sha,
        "gated": pre.gated,
        "architecture": pre.summary.get("model_type", ""),
        "params_count": pre.params_count,
        "params_exact": pre.params_exact,
        "download_bytes": pre.download_bytes,
        "memory_by_format": pre.memory_by_format,
        "free_disk_bytes": hub.free_disk_bytes(settings.HF_CACHE_DIR),
    }


@router.post("", response=responses(202, ModelOut))
def start_download(request: HttpRequest, body: DownloadIn):
    """Queue a download; follow it with GET /models/{id}."""
    form = DownloadForm(form_data(body.dict()), user=request.user)
    if not form.is_valid():
        raise invalid(form)
    try:
        record = form.create(owner=request.user)
    except downloads.AlreadyInStudio as exc:
        raise Refused(409, str(exc), [{"field": "repo_id", "message": str(exc)}]) from None
    return 202, record


@router.get("/{model_id}", response=responses(200, ModelOut))
def get_model(request: HttpRequest, model_id: int = ModelId):
    check_lost_jobs()
    return _visible(request, model_id)


@router.patch("/{model_id}", response=responses(200, ModelOut))
def rename(request: HttpRequest, body: RenameIn, model_id: int = ModelId):
    record = _visible(request, model_id)
    may_change(record, request.user)
    form = RenameForm(form_data(body.dict()), instance=record)
    if not form.is_valid():
        raise invalid(form)
    return form.save()


@router.post("/{model_id}/cancel", response=responses(200, ModelOut))
def cancel(request: HttpRequest, model_id: int = ModelId):
    record = _visible(request, model_id)
    return cancelled(record, request.user)


@router.post("/{model_id}/retry", response=responses(202, ModelOut))
def retry(request: HttpRequest, body: RetryIn, model_id: int = ModelId):
    """Retry a failed or cancelled download, or download a ready model again in another format."""
    record = _visible(request, model_id)
    may_change(record, request.user)
    form = RestartForm(
        form_data({"quantization": body.quantization or record.quantization, "token": body.token}),
        record=record,
    )
    if not form.is_valid():
        raise invalid(form)
    downloads.restart(record, form.cleaned_data["quantization"], form.cleaned_data.get("token") or None)
    record.refresh_from_db()
    return 202, record


@router.delete("/{model_id}", response=responses(200, Freed))
def delete(request: HttpRequest, model_id: int = ModelId):
    """Delete the model, its files and its extractions' files."""
    record = _visible(request, model_id)
    may_change(record, request.user)
    try:
        return {"freed_bytes": record.delete_with_files(request.user)}
    except DeletionRefused as exc:
        raise Refused(409, exc.message) from None


@router.get("/{model_id}/architecture", response=responses(200, ArchitectureOut))
def architecture(request: HttpRequest, model_id: int = ModelId):
    record = _visible(request, model_id)
    return {
        "id": record.pk,
        "architecture": record.architecture,
        "summary": record.architecture_summary,
        "config": record.architecture_config,
    }
