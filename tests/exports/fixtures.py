"""Fixtures of the export tests (tests/exports, tests/api): a completed extraction to export,
without a download: the engine's own folder for a tiny Llama (built once per run), copied into
the studio's activations folder under a record written directly."""

from __future__ import annotations

import json
import shutil

import pytest

from models_app.ml import extraction, loading
from models_app.ml.extraction import ExtractionSettings
from tests.helpers import SAMPLE_TEXTS
from tests.tinymodels import build_model
from tests.web.owned import extraction_of

CONTEXT = 16


@pytest.fixture(scope="session")
def engine_folder(tmp_path_factory):
    loaded = loading.load(build_model("llama", tmp_path_factory.mktemp("tiny-llama")), "fp32", device="cpu")
    folder = tmp_path_factory.mktemp("extraction")
    settings = ExtractionSettings(
        layers=[0, 1], hooks=["residual", "mlp"], batch_size=3, context_length=CONTEXT, dtype="float32"
    )
    extraction.extract(loaded.model, loaded.tokenizer, SAMPLE_TEXTS, settings, folder)
    return folder


@pytest.fixture
def completed(engine_folder, owner):
    """completed(user=owner) -> a completed Extraction whose folder holds the engine's files."""

    def make(user=owner):
        record = extraction_of(user, layers=[0, 1], hooks=["residual", "mlp"], context_length=CONTEXT)
        shutil.copytree(engine_folder, record.output_dir)
        record.metadata = json.loads((record.output_dir / "metadata.json").read_text())
        record.save(update_fields=["metadata"])
        return record

    return make
