"""/api/v1/extractions/{id}/comparisons and /api/v1/comparisons/{id}: extractions of one model in
several formats compared on their shared real tokens: start one (the extraction of the path is
the reference), follow it and read its result, cancel it, delete it."""

from __future__ import annotations

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema
from ninja.params import Path

from ..forms.comparisons import ComparisonForm
from ..jobs.lost import check_lost_jobs
from ..models import Comparison, Extraction
from .common import MAX_ID, cancelled, form_data, invalid, record_deleted, responses
from .schemas import ComparisonOut

router = Router(tags=["comparisons"])
ExtractionId = Path(..., ge=1, le=MAX_ID)
ComparisonId = Path(..., ge=1, le=MAX_ID)


class ComparisonIn(Schema):
    others: list[int] = Field(
        ...,
        min_length=1,
        examples=[[4, 5]],
        description="Completed extractions of the same model commit, dataset, samples and context length",
    )


def _visible_comparisons(request: HttpRequest):
    return Comparison.objects.visible_to(request.user).select_related("owner")


@router.get("/extractions/{extraction_id}/comparisons", response=responses(200, list[ComparisonOut]))
def list_comparisons(request: HttpRequest, extraction_id: int = ExtractionId):
    """The comparisons whose reference is this extraction, newest first."""
    check_lost_jobs()
    extraction = get_object_or_404(Extraction.objects.visible_to(request.user), pk=extraction_id)
    return list(_visible_comparisons(request).filter(base=extraction))


@router.post("/extractions/{extraction_id}/comparisons", response=responses(202, ComparisonOut))
def start(request: HttpRequest, body: ComparisonIn, extraction_id: int = ExtractionId):
    """Queue a comparison of the others with this extraction; follow it with GET
    /comparisons/{id}, whose `result` then holds the figures per (layer, hook)."""
    extraction = get_object_or_404(Extraction.objects.visible_to(request.user), pk=extraction_id)
    form = ComparisonForm(form_data(body.dict()), base=extraction, user=request.user)
    if not form.is_valid():
        raise invalid(form)
    return 202, form.create(owner=request.user)


@router.get("/comparisons/{comparison_id}", response=responses(200, ComparisonOut))
def get_comparison(request: HttpRequest, comparison_id: int = ComparisonId):
    check_lost_jobs()
    return get_object_or_404(_visible_comparisons(request), pk=comparison_id)


@router.post("/comparisons/{comparison_id}/cancel", response=responses(200, ComparisonOut))
def cancel(request: HttpRequest, comparison_id: int = ComparisonId):
    return cancelled(get_object_or_404(_visible_comparisons(request), pk=comparison_id), request.user)


@router.delete("/comparisons/{comparison_id}", response=responses(204, None))
def delete(request: HttpRequest, comparison_id: int = ComparisonId):
    """Delete the record (a running comparison must be cancelled first)."""
    return record_deleted(get_object_or_404(_visible_comparisons(request), pk=comparison_id), request.user)
