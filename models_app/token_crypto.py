"""Access tokens at rest: encrypted with the studio's token keys (settings.TOKEN_KEYS, apart from
SECRET_KEY), never in plain text. The first key encrypts; every key decrypts, so a new key can be
put first and `manage.py rotate_token_key` re-encrypts what is stored before the old one goes.

A token lives only between the request that starts a download and the end of that job: the job
reads it by model id (so it is never a task argument or result) and erases it when it finishes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.http import QueryDict
from django.views.debug import SafeExceptionReporterFilter


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in settings.TOKEN_KEYS])


def rotate(blob: bytes | memoryview | None) -> bytes | None:
    """The same token, encrypted with the first key (no token: none)."""
    return _fernet().rotate(bytes(blob)) if blob else None


def encrypt(token: str) -> bytes | None:
    return _fernet().encrypt(token.encode()) if token else None


def decrypt(blob: bytes | memoryview | None) -> str | None:
    if not blob:
        return None
    try:
        return _fernet().decrypt(bytes(blob)).decode()
    except InvalidToken:
        return None  # its key is no longer among the token keys: as if no token was given


def may_use_operator_token(user) -> bool:
    """Whether `user` (None: the terminal, that is the operator) may download with the
    operator's Hub credentials when they give no token (settings.OPERATOR_TOKEN_FOR)."""
    if user is None or settings.OPERATOR_TOKEN_FOR == "everyone":
        return True
    return settings.OPERATOR_TOKEN_FOR == "staff" and bool(getattr(user, "is_staff", False))


def hub_token(given: str | None, operator_allowed: bool) -> str | bool | None:
    """The `token` argument for huggingface_hub: the user's token; else None, which lets it use
    the operator's HF_TOKEN or cached login; else False, which forbids that."""
    if given:
        return given
    return None if operator_allowed else False


_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{8,}")


def scrub(text: str, *secrets: str | None) -> str:
    """`text` with every given secret, and anything shaped like a Hub token, replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[token]")
    return _HF_TOKEN.sub("[token]", text)


class ErrorReportFilter(SafeExceptionReporterFilter):
    """What error reports (the DEBUG page, mails to ADMINS, Sentry-like handlers reading the
    same filter) show of a failed request: besides Django's hiding of settings and of the POST
    fields marked with sensitive_post_parameters, every frame's variables are cleansed by name
    (token, key, secret, password, authorization...) and inside dicts, and an object carrying
    a `token` attribute (an API body, a form's data) is hidden whole. ml/ cannot import Django
    to mark its functions, and this covers its frames by the same names; the Authorization
    header (an API token) is hidden too, and so is any POST field by the same names and shapes."""

    hidden_settings = re.compile(
        r"API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|AUTHORIZATION|CREDENTIAL", flags=re.IGNORECASE
    )

    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (name, self.cleanse_setting(name, value))
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]

    def get_post_parameters(self, request):
        # Django hides only the fields a view marks with sensitive_post_parameters; a token
        # pasted into any other field (a template's description) is hidden by name and shape.
        parameters = super().get_post_parameters(request)
        if not parameters or not isinstance(parameters, QueryDict):  # a QueryDict whenever there are any
            return parameters
        cleansed = parameters.copy()
        for key, values in parameters.lists():
            cleansed.setlist(key, [self.cleanse_setting(key, value) for value in values])
        return cleansed

    def cleanse_setting(self, key, value):
        # Django's recursion into dicts, lists and tuples comes back here for each item. str():
        # a lazy string (a setting of django-axes) passes isinstance but not re.search.
        if _carries_token(value) or (isinstance(value, str) and _TOKEN_SHAPED.search(str(value))):
            return self.cleansed_substitute
        if isinstance(value, Mapping) and not isinstance(value, dict):  # request.headers and the like
            return {k: self.cleanse_setting(k, v) for k, v in value.items()}
        return super().cleanse_setting(key, value)


# A Hub token, a studio API token, or an Authorization header's credentials, wherever they are.
_TOKEN_SHAPED = re.compile(
    _HF_TOKEN.pattern + r"|\bmist_[A-Za-z0-9_-]{16,}|\b(?:Bearer|Basic)\s+\S+", re.IGNORECASE
)


def _carries_token(value) -> bool:
    try:
        return bool(getattr(value, "token", None)) and not callable(value.token)
    except Exception:
        return False
