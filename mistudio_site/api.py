"""The JSON API at /api/v1/ for scripts and notebooks (OpenAPI at /api/v1/openapi.json, browsable
at /api/v1/docs). Each endpoint calls the same forms and service functions as the pages, and the
same owner rules apply (models_app/models/owned.py). Sign in with a session, or send
`Authorization: Bearer <token>` with a token from the API tokens page.

The project puts the API together from each app's routers, so neither app imports the other's
API (templates_app builds on models_app's API helpers; models_app knows nothing of templates)."""

from __future__ import annotations

from csp.decorators import csp_update
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError

from models_app.api.common import AUTH, BoundedJson, Refused
from models_app.api.comparisons import router as comparisons_router
from models_app.api.datasets import router as datasets_router
from models_app.api.exports import router as exports_router
from models_app.api.extractions import router as extractions_router
from models_app.api.format_checks import router as format_checks_router
from models_app.api.models import router as models_router
from models_app.jobs.queue import QueueUnavailable
from models_app.json_input import UnreadableJson
from templates_app.api import router as templates_router

# Swagger UI's stylesheet draws its icons from data: URLs: the docs page alone may load those.
api = NinjaAPI(
    title="miStudio API",
    version="1",
    urls_namespace="api",
    auth=AUTH,
    description="Models, datasets, activation extractions and extraction templates.",
    docs_decorator=csp_update({"img-src": ["data:"]}),
    parser=BoundedJson(),
)
api.add_router("/models", models_router)
api.add_router("/datasets", datasets_router)
api.add_router("/extractions", extractions_router)
api.add_router("", exports_router)
api.add_router("", comparisons_router)
api.add_router("", format_checks_router)
api.add_router("/templates", templates_router)


@api.exception_handler(Refused)
def refused(request: HttpRequest, exc: Refused):
    return api.create_response(request, {"detail": exc.detail, "errors": exc.errors}, status=exc.status_code)


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError):
    # ninja answers every body it cannot parse with "Cannot parse request body"; say why when
    # the reason is one of the studio's bounds.
    cause = exc.__cause__
    detail = f"The request body {cause.reason}." if isinstance(cause, UnreadableJson) else str(exc)
    return api.create_response(request, {"detail": detail}, status=exc.status_code)


@api.exception_handler(QueueUnavailable)
def queue_unavailable(request: HttpRequest, exc: QueueUnavailable):
    """The job's record has been failed with the reason (JobRecord.enqueue); say it."""
    return api.create_response(request, {"detail": exc.message, "errors": []}, status=503)


@api.exception_handler(RequestDataTooBig)
def too_big(request: HttpRequest, exc: RequestDataTooBig):
    return api.create_response(
        request, {"detail": "The request body is too large.", "errors": []}, status=413
    )


@api.exception_handler(ValidationError)
def invalid_input(request: HttpRequest, exc: ValidationError):
    """Schema errors in the same shape as form errors: the field's name and the message."""
    errors = []
    for error in exc.errors:
        where = [
            str(part)
            for part in error.get("loc", ())
            if part not in ("body", "query", "path", "form", "file")
        ]
        # Query and body schemas are passed as one named parameter: drop that name too.
        if len(where) > 1 and where[0] in ("filters", "paging", "query", "payload"):
            where = where[1:]
        errors.append({"field": ".".join(where), "message": error.get("msg", "Invalid value.")})
    return api.create_response(
        request, {"detail": "The request is invalid: see errors.", "errors": errors}, status=422
    )
