"""Completed extractions made by the real job (Django-Q2 runs synchronously in tests)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from models_app.models import Dataset, Extraction, LanguageModel
from models_app.services import extractions as extraction_services


@pytest.fixture
def ready(hub):
    call_command(
        "download_model", "tiny/llama", "--quantization", "fp16", stdout=StringIO(), stderr=StringIO()
    )
    call_command("add_dataset", "data/corpus", "--name", "corpus", stdout=StringIO())
    return LanguageModel.objects.get(), Dataset.objects.get()


@pytest.fixture
def extract(ready):
    """extract(**fields) -> a completed Extraction of the ready model over the corpus."""
    model, dataset = ready

    def run(**fields) -> Extraction:
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
