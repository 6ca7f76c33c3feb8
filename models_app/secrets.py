"""Access tokens at rest: encrypted with a key derived from SECRET_KEY, never in plain text.

A token lives only between the request that starts a download and the end of that job: the job
reads it by model id (so it is never a task argument or result) and erases it when it finishes.
"""
from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    digest = hashlib.sha256(f"mistudio-hf-token:{settings.SECRET_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(token: str) -> bytes | None:
    return _fernet().encrypt(token.encode()) if token else None


def decrypt(blob: bytes | memoryview | None) -> str | None:
    if not blob:
        return None
    try:
        return _fernet().decrypt(bytes(blob)).decode()
    except InvalidToken:
        return None  # SECRET_KEY changed since: behave as if no token was given
