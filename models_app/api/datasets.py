"""/api/v1/datasets: list, add from the Hub, upload a file, get, cancel, delete."""

from __future__ import annotations

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, File, Form, Query, Router, Schema
from ninja.files import UploadedFile
from ninja.params import Path

from ..forms.datasets import HubDatasetForm, UploadDatasetForm
from ..jobs.lost import check_lost_jobs
from ..ml.datasets import DatasetError
from ..ml.hub import HubError
from ..models import Dataset, DeletionRefused
from ..services import datasets as dataset_services
from .common import MAX_ID, Paging, Refused, cancelled, form_data, invalid, may_change, page_of, responses
from .schemas import DatasetOut, DatasetPage, Freed

router = Router(tags=["datasets"])
DatasetId = Path(..., ge=1, le=MAX_ID)


class HubDatasetIn(Schema):
    repo_id: str = Field(..., examples=["stanfordnlp/imdb"])
    revision: str = "main"
    files: str = Field(
        "", description="A glob of the files to read, e.g. data/train-*.parquet; empty: every supported file"
    )
    text_field: str = "text"
    name: str = ""
    token: str | None = None


def _visible(request: HttpRequest, dataset_id: int) -> Dataset:
    return get_object_or_404(Dataset.objects.visible_to(request.user).select_related("owner"), pk=dataset_id)


@router.get("", response=responses(200, DatasetPage))
def list_datasets(request: HttpRequest, paging: Query[Paging]):
    check_lost_jobs()
    records = Dataset.objects.visible_to(request.user).select_related("owner")
    return page_of(records, paging.page, paging.page_size)


@router.post("/hub", response=responses(202, DatasetOut))
def add_from_hub(request: HttpRequest, body: HubDatasetIn):
    """Check the repository now, then download and read it in a job (GET /datasets/{id})."""
    form = HubDatasetForm(form_data(body.dict()))
    if not form.is_valid():
        raise invalid(form)
    try:
        record = form.queue(owner=request.user)
    except HubError as exc:
        field = exc.field if exc.field in form.fields else ""
        raise Refused(422, exc.message, [{"field": field, "message": exc.message}]) from None
    except DatasetError as exc:
        raise Refused(422, str(exc), [{"field": "files", "message": str(exc)}]) from None
    record.refresh_from_db()
    return 202, record


@router.post("/upload", response={**responses(201, DatasetOut), 202: DatasetOut})
def upload(
    request: HttpRequest, file: File[UploadedFile], name: Form[str] = "", text_field: Form[str] = "text"
):
    """A .txt, .jsonl, .json, .csv or .parquet file. A small text file is read before the answer
    comes back (201); a larger one, or any Parquet file, is read by a job (202: follow it with
    GET /datasets/{id})."""
    form = UploadDatasetForm({"name": name, "text_field": text_field}, {"file": file})
    if not form.is_valid():
        raise invalid(form)
    try:
        record = dataset_services.add_upload(
            form.cleaned_data["file"],
            form.cleaned_data["name"],
            form.cleaned_data["text_field"],
            owner=request.user,
        )
    except DatasetError as exc:  # the file, or its text field / column
        field = exc.field if exc.field in form.fields else "file"
        raise Refused(422, str(exc), [{"field": field, "message": str(exc)}]) from None
    record.refresh_from_db()
    return (201 if record.status == "ready" else 202), record


@router.get("/{dataset_id}", response=responses(200, DatasetOut))
def get_dataset(request: HttpRequest, dataset_id: int = DatasetId):
    check_lost_jobs()
    return _visible(request, dataset_id)


@router.post("/{dataset_id}/cancel", response=responses(200, DatasetOut))
def cancel(request: HttpRequest, dataset_id: int = DatasetId):
    record = _visible(request, dataset_id)
    return cancelled(record, request.user)


@router.delete("/{dataset_id}", response=responses(200, Freed))
def delete(request: HttpRequest, dataset_id: int = DatasetId):
    record = _visible(request, dataset_id)
    may_change(record, request.user)
    try:
        return {"freed_bytes": record.delete_with_files(request.user)}
    except DeletionRefused as exc:
        raise Refused(409, exc.message) from None
