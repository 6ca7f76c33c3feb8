"""Model management pages. Full pages for plain requests, `template#fragment` for htmx."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget

from ..forms.downloads import DownloadForm, PreviewForm, RestartForm
from ..forms.models import ModelFilterForm, RenameForm
from ..jobs.lost import check_lost_jobs
from ..ml import hub
from ..ml import quantization as quant
from ..models import DeletionRefused, LanguageModel, StillRunning
from ..services import downloads
from .htmx import HtmxHttpRequest, render_page_or_partial, wants_partial

PAGE = "models_app/index.html"
PAGE_SIZE = 12


def _list_context(request: HtmxHttpRequest) -> dict:
    check_lost_jobs()  # a page render is one of those who notice lost workers
    filters = ModelFilterForm(request.GET or None, user=request.user)
    models = filters.apply(LanguageModel.objects.visible_to(request.user).select_related("owner"))
    page = Paginator(models, PAGE_SIZE).get_page(request.GET.get("page"))
    LanguageModel.summarize_extractions(page.object_list, request.user)
    query = request.GET.copy()
    query.pop("page", None)
    return {
        "filters": filters,
        "page": page,
        "query": query.urlencode(),
    }


@login_required
@require_GET
def index(request: HtmxHttpRequest) -> HttpResponse:
    context = _list_context(request)
    if wants_partial(request, target="model-list"):
        return render(request, f"{PAGE}#model-list", context)
    context["form"] = DownloadForm(user=request.user)
    return render(request, PAGE, context)


@sensitive_post_parameters("token")
@login_required
@require_POST
def preview(request: HtmxHttpRequest) -> HttpResponse:
    form = PreviewForm(request.POST, user=request.user)
    valid = form.is_valid()
    context: dict[str, Any] = {"form": form, "preview": form.preflight if valid else None}
    if form.preflight:
        context["free_disk"] = hub.free_disk_bytes(settings.HF_CACHE_DIR)
        context["memory_rows"] = [(quant.LABELS[f], b) for f, b in form.preflight.memory_by_format.items()]
    return render(request, f"{PAGE}#preview", context)


@sensitive_post_parameters("token")
@login_required
@require_POST
def download(request: HtmxHttpRequest) -> HttpResponse:
    form = DownloadForm(request.POST, user=request.user)
    if not form.is_valid():
        return render(request, f"{PAGE}#download-form", {"form": form}, status=200 if request.htmx else 422)
    try:
        record = form.create(owner=request.user)
    except downloads.AlreadyInStudio as exc:
        form.add_error("repo_id", str(exc))
        return render(request, f"{PAGE}#download-form", {"form": form}, status=200 if request.htmx else 422)
    if not request.htmx:
        messages.success(request, f"Downloading {record.repo_id}.")
        return redirect("models_app:index")
    return render(
        request,
        f"{PAGE}#download-started",
        {
            "form": DownloadForm(user=request.user),
            "model": record,
            "first": _is_first(request),
        },
    )


def _is_first(request: HtmxHttpRequest) -> bool:
    """The studio's (or, in a private studio, the user's) first model: the page says what comes next."""
    return LanguageModel.objects.visible_to(request.user).count() == 1


@login_required
@require_GET
def card(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    check_lost_jobs()
    return card_response(request, _visible(request, pk))


def _visible(request: HtmxHttpRequest, pk: int) -> LanguageModel:
    return get_object_or_404(LanguageModel.objects.visible_to(request.user), pk=pk)


def card_response(
    request: HtmxHttpRequest, record: LanguageModel, status: int = 200, **extra
) -> HttpResponse:
    """A model's card (a redirect to the list for a plain request), with what `extra` adds."""
    if not request.htmx:
        if extra.get("card_error"):
            messages.error(request, extra["card_error"])
        return redirect("models_app:index")
    LanguageModel.summarize_extractions([record], request.user)
    context = {"model": record, **extra}
    return render(request, f"{PAGE}#model-card", context, status=status)


@login_required
@require_POST
def cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = _visible(request, pk)
    refused = record.change_refusal(request.user) or record.request_cancel()
    return card_response(request, record, card_error=refused)


@sensitive_post_parameters("token")
@login_required
@require_POST
def restart(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = _visible(request, pk)
    if refused := record.change_refusal(request.user):
        return card_response(request, record, card_error=refused)
    form = RestartForm(request.POST, record=record)
    if not form.is_valid():
        return card_response(
            request,
            record,
            card_error=" ".join(
                [str(e) for e in form.non_field_errors()] or [str(e) for e in form.errors.values()]
            ),
        )
    downloads.restart(record, form.cleaned_data["quantization"], form.cleaned_data.get("token") or None)
    record.refresh_from_db()
    return card_response(request, record)


@login_required
@require_http_methods(["GET", "POST"])
def rename(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = _visible(request, pk)
    if refused := record.change_refusal(request.user):
        # The Rename link swaps the title; a refusal swaps the whole card, saying why.
        return reswap(
            retarget(card_response(request, record, card_error=refused), f"#model-{pk}"), "outerHTML"
        )
    form = RenameForm(request.POST or None, instance=record)
    if request.method == "POST" and form.is_valid():
        form.save()
        # The form swaps itself (so a refusal of the name stays in it); the saved name, the card.
        return reswap(retarget(card_response(request, record), f"#model-{pk}"), "outerHTML")
    if request.method == "GET" and request.GET.get("cancel"):
        return card_response(request, record)
    return render(request, f"{PAGE}#rename-form", {"model": record, "rename_form": form})


@login_required
@require_POST
def delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The Delete button's answer goes to the toasts (a live update may have removed the card
    already); a refusal goes back to the card, saying why."""
    record = _visible(request, pk)
    name = record.name
    try:
        freed = record.delete_with_files(request.user)
    except StillRunning as exc:
        if not request.htmx:
            messages.error(request, exc.message)
            return redirect("models_app:index")
        # A toast, not the card: the card re-renders with every progress update.
        LanguageModel.summarize_extractions([record], request.user)
        return _on_card(
            render(
                request,
                f"{PAGE}#still-running",
                {"model": record, "message": exc.message, "extraction": exc.blocking},
            ),
            pk,
        )
    except DeletionRefused as exc:
        return _on_card(card_response(request, record, card_error=exc.message), pk)
    if not request.htmx:
        messages.success(request, f"Deleted {name}.")
        return redirect("models_app:index")
    return render(request, f"{PAGE}#deleted", {"name": name, "freed": freed, "removed": f"model-{pk}"})


def _on_card(response: HttpResponse, pk: int) -> HttpResponse:
    return reswap(retarget(response, f"#model-{pk}"), "outerHTML")


@login_required
@require_GET
def architecture(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = _visible(request, pk)
    context = {"model": record, "arch": record.architecture_summary}
    return render_page_or_partial(request, "models_app/architecture.html", "modal", context)
