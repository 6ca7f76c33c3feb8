"""Bounds on an extraction request, and requests that race with running jobs."""

from __future__ import annotations

import pytest
from django.urls import reverse

from models_app.models import Extraction, LanguageModel
from tests.helpers import HTMX

# Slow: every test first downloads a model and adds a dataset by their real jobs (`ready`).
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def start(client, model, dataset, **overrides):
    data = {
        "dataset": dataset.pk,
        "layers": ["0", "1"],
        "hooks": ["residual", "mlp"],
        "batch_size": 4,
        "max_samples": 12,
        "context_length": 32,
        "top_k": 5,
        "dtype": "float16",
        **overrides,
    }
    return client.post(reverse("models_app:extract-start", args=[model.pk]), data, **HTMX).content.decode()


def test_context_length_is_bounded_when_the_config_has_no_maximum(owner_client, ready):
    model, dataset = ready
    config = {k: v for k, v in model.architecture_config.items() if k != "max_position_embeddings"}
    LanguageModel.objects.filter(pk=model.pk).update(architecture_config=config)
    model.refresh_from_db()
    html = start(owner_client, model, dataset, context_length=1_000_000)
    assert 'id="error-context_length"' in html and "at most 32,768 tokens" in html
    assert not Extraction.objects.exists()


def test_a_top_k_too_large_for_the_device_is_refused_at_its_field(owner_client, ready):
    model, dataset = ready
    LanguageModel.objects.filter(pk=model.pk).update(
        architecture_config={**model.architecture_config, "hidden_size": 32_768}
    )
    model.refresh_from_db()
    html = start(owner_client, model, dataset, top_k=1000, hooks=["residual", "mlp", "attention"])
    assert 'id="error-top_k"' in html and "GiB on the device" in html
    assert not Extraction.objects.exists()
    estimate = owner_client.post(
        reverse("models_app:extract-estimate", args=[model.pk]),
        {
            "dataset": dataset.pk,
            "layers": ["0", "1"],
            "hooks": ["residual"],
            "top_k": 1000,
            "context_length": 32,
            "batch_size": 4,
            "dtype": "float16",
        },
        **HTMX,
    ).content.decode()
    assert "GB (model included)" in estimate  # the top-K counts in the memory a run needs


def test_the_same_extraction_twice_is_refused_while_the_first_is_queued(owner_client, ready):
    model, dataset = ready
    queued = Extraction.objects.create(
        model=model,
        dataset=dataset,
        layers=[0, 1],
        hooks=["residual", "mlp"],
        batch_size=4,
        max_samples=12,
        context_length=32,
        top_k=5,
        dtype="float16",
    )
    html = start(owner_client, model, dataset)
    assert f"Extraction {queued.pk} with these settings is already queued." in html
    assert Extraction.objects.count() == 1
    start(owner_client, model, dataset, top_k=6)  # other settings: a new extraction
    assert Extraction.objects.count() == 2


def test_a_model_cannot_be_downloaded_again_while_an_extraction_reads_it(owner_client, ready, settings):
    model, dataset = ready
    running = Extraction.objects.create(
        model=model, dataset=dataset, layers=[0], hooks=["mlp"], status="loading"
    )
    html = owner_client.post(
        reverse("models_app:restart", args=[model.pk]), {"quantization": "q8"}, **HTMX
    ).content.decode()
    assert f"Extraction {running.pk} of this model is loading: cancel it first." in html
    model.refresh_from_db()
    assert model.status == "ready" and model.quantization == "fp16"
