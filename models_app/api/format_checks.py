"""/api/v1/models/{id}/format-checks and /api/v1/format-checks/{id}: every ready format of a
model's repository and commit run over a dataset's first samples and compared with the most
precise on next-token predictions: start one, follow it and read its result, cancel, delete."""

from __future__ import annotations

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema
from ninja.params import Path

from ..forms.format_checks import MAX_CHECK_SAMPLES, FormatCheckForm
from ..jobs.lost import check_lost_jobs
from ..models import FormatCheck, LanguageModel
from .common import MAX_ID, cancelled, form_data, invalid, record_deleted, responses
from .schemas import FormatCheckOut

router = Router(tags=["format checks"])
ModelId = Path(..., ge=1, le=MAX_ID)
CheckId = Path(..., ge=1, le=MAX_ID)


class FormatCheckIn(Schema):
    dataset: int = Field(..., ge=1, le=MAX_ID, description="A ready dataset's id")
    samples: int | None = Field(None, ge=1, le=MAX_CHECK_SAMPLES, description="Its first samples run (64)")
    context_length: int | None = Field(None, ge=2, le=32_768, description="Tokens per sample (128)")
    batch_size: int | None = Field(None, ge=1, le=512, description="Samples per forward pass (8)")


def _visible_checks(request: HttpRequest):
    return FormatCheck.objects.visible_to(request.user).select_related("owner")


@router.get("/models/{model_id}/format-checks", response=responses(200, list[FormatCheckOut]))
def list_checks(request: HttpRequest, model_id: int = ModelId):
    """The format checks asked from this model, newest first."""
    check_lost_jobs()
    model = get_object_or_404(LanguageModel.objects.visible_to(request.user), pk=model_id)
    return list(_visible_checks(request).filter(model=model))


@router.post("/models/{model_id}/format-checks", response=responses(202, FormatCheckOut))
def start(request: HttpRequest, body: FormatCheckIn, model_id: int = ModelId):
    """Queue a check of every ready format of this model's repository and commit; follow it with
    GET /format-checks/{id}, whose `result` then holds the figures per format."""
    model = get_object_or_404(LanguageModel.objects.visible_to(request.user), pk=model_id)
    form = FormatCheckForm(form_data(body.dict()), model=model, user=request.user)
    if not form.is_valid():
        raise invalid(form)
    return 202, form.create(owner=request.user)


@router.get("/format-checks/{check_id}", response=responses(200, FormatCheckOut))
def get_check(request: HttpRequest, check_id: int = CheckId):
    check_lost_jobs()
    return get_object_or_404(_visible_checks(request), pk=check_id)


@router.post("/format-checks/{check_id}/cancel", response=responses(200, FormatCheckOut))
def cancel(request: HttpRequest, check_id: int = CheckId):
    return cancelled(get_object_or_404(_visible_checks(request), pk=check_id), request.user)


@router.delete("/format-checks/{check_id}", response=responses(204, None))
def delete(request: HttpRequest, check_id: int = CheckId):
    """Delete the record (a running check must be cancelled first)."""
    return record_deleted(get_object_or_404(_visible_checks(request), pk=check_id), request.user)
