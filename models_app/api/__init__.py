"""The JSON API at /api/v1/ for scripts and notebooks (OpenAPI at /api/v1/openapi.json, browsable
at /api/v1/docs). Each endpoint calls the same forms and service functions as the pages, and the
same owner rules apply (models_app/models/owned.py). Sign in with a session, or send
`Authorization: Bearer <token>` with a token from the API tokens page."""
from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from ninja import NinjaAPI
from ninja.errors import ValidationError

from templates_app.api import router as templates_router

from .common import AUTH, Refused
from .datasets import router as datasets_router
from .extractions import router as extractions_router
from .models import router as models_router

api = NinjaAPI(title="miStudio API", version="1", urls_namespace="api", auth=AUTH,
               description="Models, datasets, activation extractions and extraction templates.")
api.add_router("/models", models_router)
api.add_router("/datasets", datasets_router)
api.add_router("/extractions", extractions_router)
api.add_router("/templates", templates_router)


@api.exception_handler(Refused)
def refused(request: HttpRequest, exc: Refused):
    return api.create_response(request, {"detail": exc.detail, "errors": exc.errors}, status=exc.status_code)


@api.exception_handler(RequestDataTooBig)
def too_big(request: HttpRequest, exc: RequestDataTooBig):
    return api.create_response(request, {"detail": "The request body is too large.", "errors": []}, status=413)


@api.exception_handler(ValidationError)
def invalid_input(request: HttpRequest, exc: ValidationError):
    """Schema errors in the same shape as form errors: the field's name and the message."""
    errors = []
    for error in exc.errors:
        where = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path", "form", "file")]
        # Query and body schemas are passed as one named parameter: drop that name too.
        if len(where) > 1 and where[0] in ("filters", "paging", "query", "payload"):
            where = where[1:]
        errors.append({"field": ".".join(where), "message": error.get("msg", "Invalid value.")})
    return api.create_response(request, {"detail": "The request is invalid: see errors.", "errors": errors},
                               status=422)
