"""/api/v1/extractions: list, start, get (with statistics and files), cancel, delete, download a
file, and the top examples of a neuron."""

from __future__ import annotations

from typing import Literal

from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema
from ninja.params import Path

from ..forms.extractions import ExtractionForm
from ..forms.history import SORTS, ExtractionFilterForm, NeuronForm
from ..jobs.lost import check_lost_jobs
from ..ml.vocabulary import DTYPES, HOOK_TYPES, hooks_described
from ..models import DeletionRefused, Extraction, LanguageModel
from ..services import examples as example_services
from ..services import extractions as extraction_services
from .common import (
    ERRORS,
    MAX_ID,
    Paging,
    Refused,
    cancelled,
    form_data,
    invalid,
    may_change,
    page_of,
    responses,
)
from .schemas import ExamplesOut, ExtractionDetail, ExtractionOut, ExtractionPage, Freed

router = Router(tags=["extractions"])
ExtractionId = Path(..., ge=1, le=MAX_ID)
Hook = Literal[HOOK_TYPES]  # type: ignore[valid-type]
Dtype = Literal[DTYPES]  # type: ignore[valid-type]
# The pages show each hook by its label: the documentation pairs the two.
HOOKS = f"Hook types: {hooks_described()}"


class ExtractionFilters(Paging):
    q: str = Field("", description="Part of the model's or the dataset's name")
    model: int | None = Field(None, ge=1, le=MAX_ID)
    dataset: int | None = Field(None, ge=1, le=MAX_ID)
    status: str = ""
    hook: str = Field("", description=f"One hook type, e.g. mlp. {HOOKS}")
    sort: Literal[tuple(SORTS)] = "newest"  # type: ignore[valid-type]


class ExtractionIn(Schema):
    model: int = Field(..., description="A ready model's id")
    dataset: int = Field(..., description="A ready dataset's id")
    layers: list[int] = Field(..., examples=[[0, 5, 11]])
    hooks: list[Hook] = Field(..., examples=[["residual", "mlp"]], description=HOOKS)
    batch_size: int = 8
    micro_batch_size: int | None = Field(None, description="Samples per forward pass; empty: the batch size")
    max_samples: int | None = Field(None, description="Empty: the whole dataset")
    context_length: int = 128
    top_k: int = 10
    dtype: Dtype = "float16"
    context_prefix_tokens: int | None = None
    context_suffix_tokens: int | None = None


class ExamplesQuery(Schema):
    target: str = Field(..., description='A (layer, hook) of the extraction, e.g. "layer_3_residual"')
    neuron: int | None = Field(None, description="Empty: the neurons with the highest maximum activation")
    prefix: int | None = Field(None, description="Tokens shown before the peak (default: the extraction's)")
    suffix: int | None = Field(None, description="Tokens shown after the peak")


def _visible(request: HttpRequest):
    return Extraction.objects.visible_to(request.user).select_related("owner")


@router.get("", response=responses(200, ExtractionPage))
def list_extractions(request: HttpRequest, filters: Query[ExtractionFilters]):
    check_lost_jobs()
    form = ExtractionFilterForm(form_data(filters.dict(exclude={"page", "page_size"})), user=request.user)
    if not form.is_valid():
        raise invalid(form)
    return page_of(form.apply(_visible(request).defer("metadata")), filters.page, filters.page_size)


@router.post("", response=responses(202, ExtractionOut))
def start(request: HttpRequest, body: ExtractionIn):
    """Queue an extraction; follow it with GET /extractions/{id}."""
    model = LanguageModel.objects.visible_to(request.user).filter(pk=body.model).first()
    if model is None:
        raise Refused(
            422, "The request is invalid: see errors.", [{"field": "model", "message": "No such model."}]
        )
    data = form_data(body.dict(exclude={"model"}))
    form = ExtractionForm(data, model=model, user=request.user)
    if not form.is_valid():
        raise invalid(form)
    return 202, form.create(owner=request.user)


@router.get("/{extraction_id}", response=responses(200, ExtractionDetail))
def get_extraction(request: HttpRequest, extraction_id: int = ExtractionId):
    check_lost_jobs()
    return get_object_or_404(_visible(request), pk=extraction_id)


@router.post("/{extraction_id}/cancel", response=responses(200, ExtractionOut))
def cancel(request: HttpRequest, extraction_id: int = ExtractionId):
    record = get_object_or_404(_visible(request), pk=extraction_id)
    return cancelled(record, request.user)


@router.post("/{extraction_id}/retry", response=responses(202, ExtractionOut))
def retry(request: HttpRequest, extraction_id: int = ExtractionId):
    record = get_object_or_404(_visible(request), pk=extraction_id)
    may_change(record, request.user)
    if not record.can_retry:
        raise Refused(409, "Only a failed or cancelled extraction can be retried.")
    extraction_services.retry(record)
    record.refresh_from_db()
    return 202, record


@router.delete("/{extraction_id}", response=responses(200, Freed))
def delete(request: HttpRequest, extraction_id: int = ExtractionId):
    """Delete the record and its files (a running extraction must be cancelled first)."""
    record = get_object_or_404(_visible(request), pk=extraction_id)
    may_change(record, request.user)
    try:
        return {"freed_bytes": record.delete_with_files(request.user)}
    except DeletionRefused as exc:
        raise Refused(409, exc.message) from None


FILE_RESPONSE = {
    "responses": {
        200: {
            "description": "The file's bytes",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    }
}


@router.get(
    "/{extraction_id}/files/{name}", response=ERRORS, url_name="extraction_file", openapi_extra=FILE_RESPONSE
)
def download_file(request: HttpRequest, name: str, extraction_id: int = ExtractionId):
    """One of its files (.npy opens with numpy.load; .npz too; metadata.json)."""
    record = get_object_or_404(_visible(request), pk=extraction_id)
    path = record.file_path(name)
    if path is None:
        raise Http404("No such file in this extraction.")
    # Its own name, as on the page: the one metadata.json lists.
    return FileResponse(
        open(path, "rb"), as_attachment=True, filename=name, content_type="application/octet-stream"
    )


@router.get("/{extraction_id}/examples", response=responses(200, ExamplesOut))
def examples(request: HttpRequest, query: Query[ExamplesQuery], extraction_id: int = ExtractionId):
    """A neuron's max-activating examples with their decoded context, or without a neuron the
    neurons with the highest maximum activation."""
    record = get_object_or_404(_visible(request).select_related("model"), pk=extraction_id)
    form = NeuronForm(form_data(query.dict()), extraction=record)
    if not form.is_valid():
        raise invalid(form)
    data = form.cleaned_data
    try:
        if data["neuron"] is None:
            strongest = example_services.strongest_neurons(record, data["target"])
            return {
                "target": data["target"],
                "neuron": None,
                "strongest": [{"neuron": n, "max_activation": v} for n, v in strongest],
            }
        found = example_services.top_examples(
            record, data["target"], data["neuron"], data["prefix"], data["suffix"]
        )
    except example_services.ExamplesUnavailable as exc:
        raise Refused(409, str(exc)) from None
    return {"target": data["target"], "neuron": data["neuron"], "examples": found}
