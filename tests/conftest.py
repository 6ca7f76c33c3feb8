"""Shared fixtures: a local Hub-protocol server with tiny models of every family, isolated
storage per test, users (owner, other user, anonymous), and a ready model with completed
extractions (for the web and browser tests alike). Helpers that test modules import are in
tests/helpers.py, never here."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest

# No test may pick up a developer's Hub credentials or reach huggingface.co.
os.environ.pop("HF_TOKEN", None)
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="mistudio-hf-home-")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # replaced by the hub fixture; never the internet

from .hubserver import HubServer
from .tinydatasets import build_corpus
from .tinymodels import FAMILIES, build_model, build_non_causal, build_remote_code_model


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
def hub_server(model_sources, dataset_source) -> Iterator[HubServer]:
    server = HubServer().start()
    server.add("data/corpus", dataset_source, repo_type="dataset")
    server.add("data/gated-corpus", dataset_source, repo_type="dataset", gated=True)
    for family, folder in model_sources.items():
        server.add(f"tiny/{family}", folder)  # tiny/remote and tiny/remote-odd ship their own code
    server.add("gated/llama", model_sources["llama"], gated=True)
    yield server
    server.stop()


@pytest.fixture
def hub(hub_server, settings, monkeypatch) -> Iterator[HubServer]:
    """The hub server, named by HF_ENDPOINT for this process and any subprocess."""
    settings.HF_ENDPOINT = hub_server.endpoint
    monkeypatch.setenv("HF_ENDPOINT", hub_server.endpoint)
    hub_server.requests.clear()
    yield hub_server
    hub_server.clear_faults()  # undo per-test faults


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


@pytest.fixture
def ready(hub):
    """(model, dataset): the tiny Llama downloaded in FP16 and the Hub corpus, by their commands."""
    from django.core.management import call_command

    from models_app.models import Dataset, LanguageModel

    call_command(
        "download_model", "tiny/llama", "--quantization", "fp16", stdout=StringIO(), stderr=StringIO()
    )
    call_command("add_dataset", "data/corpus", "--name", "corpus", stdout=StringIO())
    return LanguageModel.objects.get(), Dataset.objects.get()


@pytest.fixture
def extract(ready):
    """extract(**fields) -> a completed Extraction of the ready model over the corpus, made by the
    real job (Django-Q2 runs synchronously in tests)."""
    from models_app.services import extractions as extraction_services

    model, dataset = ready

    def run(**fields):
        options = {
            "model": model,
            "dataset": dataset,
            "layers": [0, 1],
            "hooks": ["residual", "mlp"],
            "batch_size": 4,
            "max_samples": 12,
            "context_length": 32,
            "top_k": 5,
            "dtype": "float32",
            **fields,
        }
        record = extraction_services.create(**options)
        record.refresh_from_db()
        assert record.status == "completed", record.error_message
        return record

    return run
