"""API clients: a non-staff user with a token, and helpers that send JSON with it."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from models_app.models import ApiToken


class ApiClient:
    """Django's test client speaking JSON with `Authorization: Bearer <token>` (no session, no
    CSRF: what a script sends)."""

    def __init__(self, token: str | None):
        self.client = Client()
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}

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


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def api(alice) -> ApiClient:
    _record, token = ApiToken.issue(alice, "tests")
    return ApiClient(token)


@pytest.fixture
def staff_api(owner) -> ApiClient:
    _record, token = ApiToken.issue(owner, "tests")
    return ApiClient(token)


@pytest.fixture
def ready_ids(api, hub, tmp_path) -> tuple[int, int]:
    """(model id, dataset id): alice's tiny Llama in FP16 and a 20-line text, added through the
    API with their jobs run for real (the test must use a transactional database)."""
    model = api.post("/models", {"repo_id": "tiny/llama", "quantization": "fp16"}).json()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "\n".join(f"sample number {i} says something a little longer {i * 7}" for i in range(20))
    )
    with corpus.open("rb") as upload:
        dataset = api.post("/datasets/upload", data={"file": upload}).json()
    return model["id"], dataset["id"]
