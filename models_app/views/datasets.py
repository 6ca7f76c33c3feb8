"""The Datasets tab: upload a file or add a Hub dataset repository, preview, delete."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap, retarget

from ..forms.datasets import HubDatasetForm, UploadDatasetForm
from ..jobs.lost import check_lost_jobs
from ..ml.datasets import DatasetError
from ..ml.hub import HubError
from ..ml.hub import check_token as hub_check_token
from ..models import Dataset, DeletionRefused
from ..services import datasets as dataset_services
from .htmx import HtmxHttpRequest

PAGE = "models_app/datasets.html"


def _page(request: HtmxHttpRequest, upload=None, hub_form=None, status: int = 200) -> HttpResponse:
    check_lost_jobs()
    context = {
        "upload_form": upload or UploadDatasetForm(),
        "hub_form": hub_form or HubDatasetForm(),
        "datasets": Dataset.objects.visible_to(request.user).select_related("owner"),
    }
    return render(request, PAGE, context, status=status)


@login_required
@require_GET
def index(request: HtmxHttpRequest) -> HttpResponse:
    return _page(request)


def _added(request: HtmxHttpRequest, record: Dataset, form_fragment: str, form) -> HttpResponse:
    if not request.htmx:
        return redirect("models_app:datasets")
    return render(
        request,
        f"{PAGE}#dataset-added",
        {
            "dataset": record,
            "fragment": form_fragment,
            "form": form,
            "first": Dataset.objects.visible_to(request.user).count() == 1,
        },
    )


@login_required
@require_POST
def upload(request: HtmxHttpRequest) -> HttpResponse:
    from django.conf import settings

    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > settings.MAX_UPLOAD_BYTES:  # said at the field, before the form is parsed
        message = (
            f"The upload is {declared / 1e9:.2f} GB; the studio accepts at most "
            f"{settings.MAX_UPLOAD_BYTES / 1e9:.2f} GB per file."
        )
        return render(
            request,
            f"{PAGE}#upload-form",
            {"upload_form": UploadDatasetForm(), "upload_error": message},
            status=200 if request.htmx else 413,
        )  # htmx swaps only 2xx answers
    form = UploadDatasetForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            record = dataset_services.add_upload(
                form.cleaned_data["file"],
                form.cleaned_data["name"],
                form.cleaned_data["text_field"],
                owner=request.user,
            )
            record.refresh_from_db()  # a queued job may already have run (synchronous workers)
            return _added(request, record, "upload-form", UploadDatasetForm())
        except DatasetError as exc:  # the file, or its text field / column
            form.add_error(exc.field if exc.field in form.fields else "file", str(exc))
    if request.htmx:
        return render(request, f"{PAGE}#upload-form", {"upload_form": form})
    return _page(request, upload=form, status=422)


@sensitive_post_parameters("token")
@login_required
@require_POST
def add_from_hub(request: HtmxHttpRequest) -> HttpResponse:
    form = HubDatasetForm(request.POST)
    if form.is_valid():
        try:
            record = form.queue(owner=request.user)
            record.refresh_from_db()  # the job may already have run (synchronous workers)
            return _added(request, record, "hub-form", HubDatasetForm())
        except HubError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        except DatasetError as exc:  # the matched files: mixed or unsupported formats
            form.add_error("files", str(exc))
    if request.htmx:
        return render(request, f"{PAGE}#hub-form", {"hub_form": form})
    return _page(request, hub_form=form, status=422)


@login_required
@require_GET
def card(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    check_lost_jobs()
    return _row(request, _visible(request, pk))


def _visible(request: HtmxHttpRequest, pk: int) -> Dataset:
    return get_object_or_404(Dataset.objects.visible_to(request.user), pk=pk)


def _row(request: HtmxHttpRequest, record: Dataset, **extra) -> HttpResponse:
    if not request.htmx:
        if extra.get("row_error"):
            messages.error(request, extra["row_error"])
        return redirect("models_app:datasets")
    # To the row, whatever the button aimed at (Delete aims at the toasts).
    return reswap(
        retarget(
            render(request, f"{PAGE}#dataset-row", {"dataset": record, **extra}), f"#dataset-{record.pk}"
        ),
        "outerHTML",
    )


@login_required
@require_POST
def cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = _visible(request, pk)
    return _row(request, record, row_error=record.change_refusal(request.user) or record.request_cancel())


@sensitive_post_parameters("token")
@login_required
@require_POST
def retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = _visible(request, pk)
    if refused := record.change_refusal(request.user):
        return _row(request, record, row_error=refused)
    if not record.can_retry:
        return _row(
            request, record, row_error="Only a Hub dataset that failed or was cancelled can be retried."
        )
    token = request.POST.get("token") or ""
    problem = hub_check_token(token)
    if problem:
        return _row(request, record, row_error=problem)
    text_field = (request.POST.get("text_field") or record.text_field).strip()
    if not 0 < len(text_field) <= 200:
        return _row(request, record, row_error="Name the text field or column (at most 200 characters).")
    try:
        dataset_services.retry(record, token or None, text_field)
    except HubError as exc:
        return _row(request, record, row_error=exc.message)
    record.refresh_from_db()
    return _row(request, record)


@login_required
@require_POST
def delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = _visible(request, pk)
    name = record.name
    try:
        freed = record.delete_with_files(request.user)
    except DeletionRefused as exc:
        return _row(request, record, row_error=exc.message)
    if not request.htmx:
        return redirect("models_app:datasets")
    return render(
        request, "models_app/index.html#deleted", {"name": name, "freed": freed, "removed": f"dataset-{pk}"}
    )
