"""Shared fixtures: a local Hub-protocol server with tiny models of every family, isolated
storage per test, and users (owner, other user, anonymous)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# No test may pick up a developer's Hub credentials or reach huggingface.co.
os.environ.pop("HF_TOKEN", None)
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="mistudio-hf-home-")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # replaced by the hub fixture; never the internet

from .hubserver import GOOD_TOKEN, NO_ACCESS_TOKEN, HubServer
from .tinydatasets import CORPUS, build_corpus
from .tinymodels import FAMILIES, build_model, build_non_causal, build_remote_code_model

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(scope="session")
def model_sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub-repos")
    sources = {family: build_model(family, root / family) for family in FAMILIES}
    sources["bert"] = build_non_causal(root / "bert")
    sources["remote"] = build_remote_code_model(root / "remote")
    sources["remote-odd"] = build_remote_code_model(root / "remote-odd", block_style="odd")
    return sources


@pytest.fixture(scope="session")
def dataset_source(tmp_path_factory) -> Path:
    """A Hub dataset repository: a parquet split plus a JSON-lines file."""
    return build_corpus(tmp_path_factory.mktemp("hub-datasets") / "corpus")


@pytest.fixture(scope="session")
def hub_server(model_sources, dataset_source) -> HubServer:
    server = HubServer().start()
    server.add("data/corpus", dataset_source, repo_type="dataset")
    server.add("data/gated-corpus", dataset_source, repo_type="dataset", gated=True)
    for family, folder in model_sources.items():
        server.add(f"tiny/{family}", folder)  # tiny/remote and tiny/remote-odd ship their own code
    server.add("gated/llama", model_sources["llama"], gated=True)
    yield server
    server.stop()


@pytest.fixture
def hub(hub_server, settings, monkeypatch) -> HubServer:
    """The hub server, named by HF_ENDPOINT for this process and any subprocess."""
    settings.HF_ENDPOINT = hub_server.endpoint
    monkeypatch.setenv("HF_ENDPOINT", hub_server.endpoint)
    hub_server.requests.clear()
    yield hub_server
    for repo in hub_server.repos.values():  # undo per-test faults
        repo.drop_after_bytes, repo.drop_times, repo.bytes_per_second = None, 0, None


@pytest.fixture
def slow_dataset_repo(hub, tmp_path):
    """A Hub dataset repository with one 3 MB data file, sent at 300 KB/s."""
    folder = tmp_path / "big-corpus"
    folder.mkdir()
    (folder / "train.jsonl").write_text(
        "".join(f'{{"text": "sample {i} {"x" * 60}"}}\n' for i in range(40_000))
    )
    hub.add("data/big-corpus", folder, repo_type="dataset", bytes_per_second=300_000)
    yield "data/big-corpus"
    del hub.repos["datasets/data/big-corpus"]


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path) -> Path:
    models = tmp_path / "data" / "models"
    settings.MODELS_DIR = models
    settings.HF_CACHE_DIR = models / "hub"
    settings.QUANTIZED_DIR = models / "quantized"
    settings.DATASETS_DIR = tmp_path / "data" / "datasets"
    settings.ACTIVATIONS_DIR = tmp_path / "data" / "activations"
    return tmp_path / "data"


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("owner", password="pw-owner-123", is_staff=True)


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("other", password="pw-other-123")


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def anonymous_client(client):
    return client


def run_async(scenario):
    """Run `scenario()` (async) from a sync test, on a fresh thread: Playwright keeps an event
    loop in the main thread, and a fresh thread opens its own database connections from the
    settings in force now (a pooled thread could still hold another test's database)."""
    from concurrent.futures import ThreadPoolExecutor

    from asgiref.sync import async_to_sync
    from django.db import connections

    def in_thread():
        try:
            return async_to_sync(scenario)()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(in_thread).result()


def copy_repo(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


__all__ = ["CORPUS", "GOOD_TOKEN", "HTMX", "NO_ACCESS_TOKEN", "copy_repo", "run_async"]
