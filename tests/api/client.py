"""The API as a script calls it."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client


class ApiClient:
    """Django's test client speaking JSON with `Authorization: Bearer <token>` (no session, no
    CSRF: what a script sends)."""

    def __init__(self, token: str | None):
        self.client = Client()
        self.headers: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}

    def get(self, path: str, params: dict | None = None):
        return self.client.get(f"/api/v1{path}", params or {}, **self.headers)

    def post(self, path: str, body=None, **extra):
        if "data" in extra:  # multipart
            return self.client.post(f"/api/v1{path}", extra.pop("data"), **self.headers, **extra)
        return self.client.post(
            f"/api/v1{path}",
            json.dumps(body if body is not None else {}),
            content_type="application/json",
            **self.headers,
            **extra,
        )

    def patch(self, path: str, body: dict):
        return self.client.patch(
            f"/api/v1{path}", json.dumps(body), content_type="application/json", **self.headers
        )

    def delete(self, path: str):
        return self.client.delete(f"/api/v1{path}", **self.headers)
