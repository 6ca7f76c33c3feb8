"""What every endpoint of the JSON API shares: authentication, the error shape, form input,
paging and the owner rules. Endpoints validate through the same Django forms as the pages, so
a rule lives in one place and a refusal reads the same in the page and in a script."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict
from ninja import Field, Schema
from ninja.errors import HttpError
from ninja.parser import Parser
from ninja.security import HttpBearer, SessionAuth

from ..json_input import parse_json_limited
from ..models import ApiToken

MAX_PAGE_SIZE = 100
MAX_ID = 2**63 - 1  # the largest primary key: a larger id in a path is a 422, not a lookup


class TokenAuth(HttpBearer):
    """`Authorization: Bearer mist_…`: a token made on the API tokens page or in the admin."""

    def __call__(self, request: HttpRequest):
        # Read here rather than in HttpBearer.__call__, which logs other schemes' credentials
        # under DEBUG and keeps the header in variables an error report would show.
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str):
        user = ApiToken.user_for(token)
        if user is not None:
            request.user = user  # the views and services read request.user, as the pages do
        return user


class BoundedJson(Parser):
    """JSON bodies read with bounds (nesting depth, number length): the stock parser's
    RecursionError on deep nesting, or a value nested just short of it, would fail later."""

    def parse_body(self, request: HttpRequest) -> Any:
        return parse_json_limited(request.body)


class SignedInSession(SessionAuth):
    """The browser's session (a notebook in the same browser, the OpenAPI page); unsafe methods
    need the CSRF token, as the pages do."""


AUTH = [TokenAuth(), SignedInSession()]


class FieldError(Schema):
    field: str  # "" for a problem with the request as a whole
    message: str


class Problem(Schema):
    detail: str
    errors: list[FieldError] = []


# Every operation may answer these; listed so the OpenAPI document tells the whole truth.
ERRORS: dict[int, Any] = {
    400: Problem,
    401: Problem,
    403: Problem,
    404: Problem,
    409: Problem,
    413: Problem,
    422: Problem,
    503: Problem,
}


def responses(ok: int, schema: Any) -> dict[int, Any]:
    return {ok: schema, **ERRORS}


class Refused(HttpError):
    """An answer with a message and, for invalid input, the fields at fault."""

    def __init__(self, status: int, detail: str, errors: list[dict] | None = None):
        super().__init__(status, detail)
        self.detail, self.errors = detail, errors or []


def invalid(form) -> Refused:
    """A form's errors as a 422 with field names (the form's own names; "" for the whole)."""
    errors = [
        {"field": "" if field == "__all__" else field, "message": str(message)}
        for field, messages in form.errors.items()
        for message in messages
    ]
    return Refused(422, "The request is invalid: see errors.", errors)


def may_change(record, user) -> None:
    refusal = record.change_refusal(user)
    if refusal:
        raise Refused(403, refusal)


def cancelled(record, user):
    """Cancel a job of `user`'s (or any, for staff): 409 when it has already ended."""
    may_change(record, user)
    refused = record.request_cancel()
    if refused:
        raise Refused(409, refused)
    return record


def record_deleted(record, user):
    """Delete a record that has no files of its own (a comparison, a format check): 204, or 409
    while its job runs."""
    from ..models import DeletionRefused

    may_change(record, user)
    try:
        record.delete_record(user)
    except DeletionRefused as exc:
        raise Refused(409, exc.message) from None
    return 204, None


def form_data(payload: dict[str, Any]) -> MultiValueDict:
    """A JSON body as the form data a page would post: lists stay lists, None is left out
    (an empty field), booleans are checkboxes (present when true)."""
    data: MultiValueDict[str, Any] = MultiValueDict()
    for key, value in payload.items():
        if value is None or value is False:
            continue
        if isinstance(value, (list, tuple)):
            data.setlist(key, [str(item) for item in value])
        else:
            data[key] = "on" if value is True else str(value)
    return data


class Paging(Schema):
    page: int = Field(1, ge=1, le=MAX_ID)
    page_size: int = Field(25, ge=1, le=MAX_PAGE_SIZE)


class Page(Schema):
    count: int
    page: int
    pages: int
    items: list[Any]


def page_of(queryset, page: int, page_size: int) -> dict[str, Any]:
    paginator = Paginator(queryset, page_size)  # Paging bounds it
    current = paginator.get_page(page)
    return {
        "count": paginator.count,
        "page": current.number,
        "pages": paginator.num_pages,
        "items": list(current.object_list),
    }
