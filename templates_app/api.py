"""/api/v1/templates: extraction templates for scripts (list, create, get, change, delete,
favorite, duplicate, export, import), validated by the same TemplateForm as the Templates tab."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Body, Field, Query, Router, Schema
from ninja.params import Path

from models_app.api.common import (
    MAX_ID,
    Page,
    Paging,
    Refused,
    form_data,
    invalid,
    may_change,
    page_of,
    responses,
)
from models_app.api.schemas import Owned
from models_app.ml.vocabulary import hooks_described

from . import import_export, services
from .forms import SORTS, DuplicatePolicy, TemplateFilterForm, TemplateForm
from .models import ExtractionTemplate

router = Router(tags=["templates"])
TemplateId = Path(..., ge=1, le=MAX_ID)


class TemplateOut(Owned):
    id: int
    name: str
    description: str
    layer_indices: list[int]
    hook_types: list[str]
    max_samples: int | None
    batch_size: int
    micro_batch_size: int | None
    context_length: int
    top_k_examples: int
    context_prefix_tokens: int
    context_suffix_tokens: int
    dtype: str
    is_favorite: bool
    extra_metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class TemplatePage(Page):
    items: list[TemplateOut]


class TemplateIn(Schema):
    """Any field left out keeps its value (a new template: the default). Layers may be a list or
    text such as "0, 2, 5-7"."""

    name: str | None = None
    description: str | None = None
    layer_indices: list[int] | str | None = None
    hook_types: list[str] | None = Field(None, description=f"Hook types: {hooks_described()}")
    max_samples: int | None = None
    batch_size: int | None = None
    micro_batch_size: int | None = None
    context_length: int | None = None
    top_k_examples: int | None = None
    context_prefix_tokens: int | None = None
    context_suffix_tokens: int | None = None
    dtype: str | None = None
    is_favorite: bool | None = None
    extra_metadata: dict[str, Any] | None = None


class TemplateFilters(Paging):
    q: str = Field("", description="Part of the name or description")
    favorites: bool = False
    sort: Literal[tuple(SORTS)] = "favorites"  # type: ignore[valid-type]


class ExportQuery(Schema):
    ids: list[int] = Field([], description="The templates to export; empty: every template you see")


class ImportedOut(Schema):
    index: int
    name: str
    note: str


class ImportSummaryOut(Schema):
    created: list[ImportedOut]
    updated: list[ImportedOut]
    skipped: list[ImportedOut]


def _visible(request: HttpRequest, template_id: int) -> ExtractionTemplate:
    return get_object_or_404(
        ExtractionTemplate.objects.visible_to(request.user).select_related("owner"), pk=template_id
    )


def _saved(form: TemplateForm) -> ExtractionTemplate:
    if not form.is_valid():
        raise invalid(form)
    return form.save()


@router.get("", response=responses(200, TemplatePage))
def list_templates(request: HttpRequest, filters: Query[TemplateFilters]):
    form = TemplateFilterForm(
        form_data({"q": filters.q, "sort": filters.sort, "favorites": filters.favorites})
    )
    if not form.is_valid():
        raise invalid(form)
    records = form.apply(ExtractionTemplate.objects.visible_to(request.user).select_related("owner"))
    return page_of(records, filters.page, filters.page_size)


@router.post("", response=responses(201, TemplateOut))
def create(request: HttpRequest, body: TemplateIn):
    form = TemplateForm(body.dict(exclude_none=True))
    form.instance.owner = request.user
    return 201, _saved(form)


@router.get("/export", response=responses(200, dict[str, Any]))
def export(request: HttpRequest, query: Query[ExportQuery]):
    """The same JSON file the Templates tab exports (import it here or there)."""
    records = ExtractionTemplate.objects.visible_to(request.user).order_by("pk")
    if query.ids:
        records = records.filter(pk__in=[i for i in query.ids if 0 < i <= MAX_ID])
    return import_export.export_payload(records)


@router.post("/import", response=responses(200, ImportSummaryOut))
def import_templates(
    request: HttpRequest,
    payload: dict[str, Any] | list[Any] = Body(...),
    on_duplicate: DuplicatePolicy = "skip",
):
    """An exported file's JSON as the body. Nothing is written if any template is invalid."""
    try:
        summary = import_export.import_payload(payload, on_duplicate, user=request.user)
    except import_export.ImportRefused as exc:
        raise Refused(
            422,
            "Nothing was imported: see errors.",
            [{"field": "", "message": problem} for problem in exc.problems],
        ) from None
    return {
        kind: [{"index": i.index, "name": i.name, "note": i.note} for i in getattr(summary, kind)]
        for kind in ("created", "updated", "skipped")
    }


@router.get("/{template_id}", response=responses(200, TemplateOut))
def get_template(request: HttpRequest, template_id: int = TemplateId):
    return _visible(request, template_id)


@router.patch("/{template_id}", response=responses(200, TemplateOut))
def change(request: HttpRequest, body: TemplateIn, template_id: int = TemplateId):
    template = _visible(request, template_id)
    may_change(template, request.user)
    return _saved(TemplateForm(body.dict(exclude_none=True), instance=template))


@router.delete("/{template_id}", response=responses(204, None))
def delete(request: HttpRequest, template_id: int = TemplateId):
    template = _visible(request, template_id)
    may_change(template, request.user)
    template.delete()
    return 204, None


@router.post("/{template_id}/favorite", response=responses(200, TemplateOut))
def favorite(request: HttpRequest, template_id: int = TemplateId):
    """Star or unstar it (as the star on its card does)."""
    template = _visible(request, template_id)
    may_change(template, request.user)
    return services.toggle_favorite(template)


@router.post("/{template_id}/duplicate", response=responses(201, TemplateOut))
def duplicate(request: HttpRequest, template_id: int = TemplateId):
    """A copy named "Copy of …", yours to change."""
    return 201, services.duplicate(_visible(request, template_id), owner=request.user)
