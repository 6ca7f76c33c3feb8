"""API clients: a non-staff user and a staff user, each with a token (tests/api/client.py)."""

from __future__ import annotations

import pytest

from models_app.models import ApiToken
from tests.api.client import ApiClient
from tests.exports.fixtures import completed, engine_folder  # noqa: F401 (fixtures)


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
