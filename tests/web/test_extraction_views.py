"""The extraction modal: fields, validation at the field, the live estimate, start, and the page."""

from __future__ import annotations

import re
from collections import namedtuple

import pytest
from django.urls import reverse

from models_app.models import Dataset, Extraction, LanguageModel
from tests.helpers import HTMX

# Slow: every test first downloads a model and adds a dataset by their real jobs (`ready`).
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def form_data(chosen, **overrides):
    data = {
        "dataset": chosen.pk,
        "layers": ["0", "1"],
        "hooks": ["residual", "mlp"],
        "batch_size": 4,
        "max_samples": 12,
        "context_length": 32,
        "top_k": 5,
        "dtype": "float16",
    }
    data.update(overrides)
    return data


def test_the_modal_has_every_field(owner_client, ready):
    model, _dataset = ready
    html = owner_client.get(reverse("models_app:extract", args=[model.pk]), **HTMX).content.decode()
    for text in (
        "Extract Activations",
        "Select Dataset",
        "corpus (40 samples)",
        "Select Layers",
        ">L0<",
        ">L1<",
        "Select All",
        "Deselect All",
        "Residual Stream",
        "MLP Output",
        "Attention Output",
        "Batch Size",
        "Max Samples",
        "Context Length (tokens)",
        "Top K Examples",
        "Output dtype",
        'value="float16" selected',
    ):
        assert text in html, text
    assert ">L2<" not in html
    card = owner_client.get(reverse("models_app:card", args=[model.pk]), **HTMX).content.decode()
    assert "Extract Activations" in card


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"layers": []}, "layers", "Select at least one layer."),
        ({"layers": ["7"]}, "layers", "Layer 7 does not exist: this model has layers 0 to 1."),
        ({"hooks": []}, "hooks", "Select at least one hook type."),
        ({"batch_size": 0}, "batch_size", "Batch size must be between 1 and 512."),
        ({"batch_size": 600}, "batch_size", "Batch size must be between 1 and 512."),
        ({"max_samples": 0}, "max_samples", "Max samples must be at least 1"),
        ({"context_length": 4096}, "context_length", "This model reads at most 256 tokens."),
        ({"dataset": ""}, "dataset", "Choose a dataset."),
    ],
)
def test_bad_settings_are_reported_at_the_field(owner_client, ready, overrides, field, message):
    model, dataset = ready
    html = owner_client.post(
        reverse("models_app:extract-start", args=[model.pk]), form_data(dataset, **overrides), **HTMX
    ).content.decode()
    assert message in html and f'id="error-{field}"' in html
    assert not Extraction.objects.exists()


def test_models_and_datasets_that_are_not_ready_are_refused(owner_client, ready):
    model, dataset = ready
    Dataset.objects.filter(pk=dataset.pk).update(status="processing")
    html = owner_client.post(
        reverse("models_app:extract-start", args=[model.pk]), form_data(dataset), **HTMX
    ).content.decode()
    assert "That dataset is not ready." in html
    Dataset.objects.filter(pk=dataset.pk).update(status="ready")
    LanguageModel.objects.filter(pk=model.pk).update(status="quantizing")
    html = owner_client.post(
        reverse("models_app:extract-start", args=[model.pk]), form_data(dataset), **HTMX
    ).content.decode()
    assert "is not ready (quantizing)" in html
    assert not Extraction.objects.exists()


def test_the_estimate_follows_the_fields(owner_client, ready):
    model, dataset = ready
    url = reverse("models_app:extract-estimate", args=[model.pk])
    html = owner_client.post(url, form_data(dataset, dtype="float32"), **HTMX).content.decode()
    per_file = 12 * 32 * 128 * 4
    assert f"{per_file / 1000:.1f} KB × 4 files (12 samples)" in html and "Free disk" in html
    assert "Memory for a batch" in html and "estimate-refused" not in html
    assert (
        "Choose a dataset" in owner_client.post(url, form_data(dataset, dataset=""), **HTMX).content.decode()
    )


def test_a_start_is_refused_when_the_disk_cannot_hold_it(owner_client, ready, monkeypatch):
    """A full disk is injected: the studio's free-space reading."""
    import shutil

    model, dataset = ready
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 1000, 1000))
    html = owner_client.post(
        reverse("models_app:extract-start", args=[model.pk]), form_data(dataset), **HTMX
    ).content.decode()
    assert "Not enough disk space for this extraction" in html and "The disk cannot hold this output." in html
    assert not Extraction.objects.exists()


def test_starting_closes_the_modal_and_the_card_then_shows_the_result(owner_client, ready, settings):
    model, dataset = ready
    response = owner_client.post(
        reverse("models_app:extract-start", args=[model.pk]), form_data(dataset), **HTMX
    )
    html = response.content.decode()
    record = Extraction.objects.get()
    assert 'hx-swap-oob="morph"' in html and f'id="model-{model.pk}"' in html and "extract-modal" not in html
    assert record.status == "completed", record.error_message  # Q2 runs synchronously in tests
    card = owner_client.get(reverse("models_app:card", args=[model.pk]), **HTMX).content.decode()
    assert f"Extraction {record.pk}" in card and "Completed" in card
    page = owner_client.get(reverse("models_app:extraction", args=[record.pk])).content.decode()
    for text in ("layer_1_mlp.npy", "model.layers.1.mlp", "Sparsity", "L2 mean", "tokens/s"):
        assert text in page, text
    assert (settings.ACTIVATIONS_DIR / str(record.pk) / "metadata.json").exists()


def test_an_active_extraction_shows_progress_on_the_card(owner_client, ready):
    model, dataset = ready
    record = Extraction.objects.create(
        model=model,
        dataset=dataset,
        layers=[0],
        hooks=["residual"],
        status="extracting",
        samples_done=10,
        samples_total=40,
        progress=25.0,
        tokens_per_second=1234.0,
        eta_seconds=12,
        bytes_written=5000,
    )
    card = owner_client.get(reverse("models_app:card", args=[model.pk]), **HTMX).content.decode()
    assert "10 / 40 samples" in card and "1234 tokens/s" in card and "ETA 12s" in card
    assert 'hx-trigger="offline-poll"' in card  # polls only while the live socket is down
    html = owner_client.post(
        reverse("models_app:extraction-cancel", args=[record.pk]), **HTMX
    ).content.decode()
    record.refresh_from_db()
    assert record.cancel_requested and "Cancel extraction" in html


def test_deleting_a_model_removes_its_extractions_and_waits_for_running_ones(owner_client, ready, settings):
    model, dataset = ready
    owner_client.post(reverse("models_app:extract-start", args=[model.pk]), form_data(dataset), **HTMX)
    done = Extraction.objects.get()
    folder = settings.ACTIVATIONS_DIR / str(done.pk)
    assert folder.exists()
    running = Extraction.objects.create(
        model=model, dataset=dataset, layers=[0], hooks=["mlp"], status="extracting"
    )
    html = owner_client.post(reverse("models_app:delete", args=[model.pk]), **HTMX).content.decode()
    assert f"Extraction {running.pk} of llama is running: cancel it first." in html and folder.exists()
    assert f"Cancel extraction {running.pk}" in html and 'hx-swap-oob="beforeend:#toasts"' in html
    Extraction.objects.filter(pk=running.pk).update(status="cancelled")
    owner_client.post(reverse("models_app:delete", args=[model.pk]), **HTMX)
    assert not LanguageModel.objects.exists() and not Extraction.objects.exists() and not folder.exists()


def test_the_estimate_follows_the_real_tokens_of_the_dataset(owner_client, ready, extract):
    model, dataset = ready
    url = reverse("models_app:extract-estimate", args=[model.pk])
    data = form_data(dataset, max_samples="", context_length=64, dtype="float32")
    html = owner_client.post(url, data, **HTMX).content.decode()
    sampled = re.search(
        r'id="estimate-disk">([^<]+) <span class="muted">\((\d+)% of positions are real tokens, sampled', html
    )
    assert sampled, html
    record = extract(max_samples=None, context_length=64, layers=[0, 1], hooks=["residual", "mlp"])
    measured = record.metadata["real_tokens"] / record.metadata["padded_tokens"]
    assert int(sampled.group(2)) == round(100 * measured)  # 40 samples: every text was counted
    assert measured < 0.6  # the corpus is short sentences: most positions are padding
    html = owner_client.post(url, data, **HTMX).content.decode()
    assert "real tokens, measured by an earlier extraction" in html
    on_disk = record.size_bytes
    estimated = re.search(r'id="estimate-disk">([\d.]+) (KB|MB)', html)
    size = float(estimated.group(1)) * {"KB": 1e3, "MB": 1e6}[estimated.group(2)]
    assert abs(size - on_disk) < 0.25 * on_disk, (size, on_disk)


def estimate_of(client, model, data) -> str:
    return client.post(reverse("models_app:extract-estimate", args=[model.pk]), data, **HTMX).content.decode()


def errors_at(html: str, field: str) -> str:
    """The error slot of `field` that the estimate's answer swaps in (out of band)."""
    slot = re.search(
        rf'<span class="field-errors" id="errors-{field}" hx-swap-oob="true">(.*?)</span>', html, re.S
    )
    assert slot, html
    return slot.group(1)


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"batch_size": 600}, "batch_size", "Batch size must be between 1 and 512."),
        ({"context_length": 4096}, "context_length", "This model reads at most 256 tokens."),
        ({"max_samples": 0}, "max_samples", "Max samples must be at least 1"),
        ({"micro_batch_size": 8}, "micro_batch_size", "A micro batch cannot be larger than the batch size."),
        ({"layers": ["7"]}, "layers", "Layer 7 does not exist: this model has layers 0 to 1."),
    ],
)
def test_it_shows_the_submits_error_at_the_field_instead_of_an_estimate(
    owner_client, ready, overrides, field, message
):
    model, dataset = ready
    html = estimate_of(owner_client, model, form_data(dataset, **overrides))
    assert message in errors_at(html, field) and f'id="error-{field}"' in html
    assert "Per file" not in html and "estimate-disk" not in html and "Memory for a batch" not in html
    assert errors_at(html, "dataset") == "" and errors_at(html, "top_k") == ""  # the valid fields: no error
    submitted = owner_client.post(
        reverse("models_app:extract-start", args=[model.pk]), form_data(dataset, **overrides), **HTMX
    ).content.decode()
    assert message in submitted and not Extraction.objects.exists()  # the submit says the same


def test_it_says_which_choice_is_missing_instead_of_zero_files(owner_client, ready):
    model, dataset = ready
    html = estimate_of(owner_client, model, form_data(dataset, layers=[]))
    missing = re.search(r'id="estimate-missing">(.*?)</p>', html, re.S)
    assert missing and "Select at least one layer." in missing.group(1), html
    assert "0 files" not in html and "On disk" not in html and "Per file" not in html
    assert errors_at(html, "layers") == ""  # not yet an error: the form has only just opened
    html = estimate_of(owner_client, model, form_data(dataset, hooks=[], dataset=""))
    missing = re.search(r'id="estimate-missing">(.*?)</p>', html, re.S).group(1)
    assert "Choose a dataset." in missing and "Select at least one hook type." in missing
    # After a refused submit (the modal comes back with the form bound) missing choices are errors
    # at their fields, as the submit showed them: the estimate that loads next keeps them there.
    modal = owner_client.post(
        reverse("models_app:extract-start", args=[model.pk]), form_data(dataset, layers=[]), **HTMX
    ).content.decode()
    assert 'name="attempted"' in modal and 'id="error-layers"' in modal
    html = estimate_of(owner_client, model, form_data(dataset, layers=[], attempted="1"))
    assert "Select at least one layer." in errors_at(html, "layers")
