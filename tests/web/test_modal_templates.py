"""Templates in the extraction modal: "Load template" fills the form, "Save as template" saves it."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from templates_app.models import ExtractionTemplate
from tests.helpers import HTMX

# Slow: every test first downloads a model and adds a dataset by their real jobs (`ready`).
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def checked(html: str, name: str) -> list[str]:
    return re.findall(rf'<input type="checkbox" name="{name}" value="([^"]+)"[^>]*checked', html)


def value_of(html: str, name: str) -> str:
    found = re.search(rf'<input type="number" name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field"
    return found.group(1)


def test_loading_a_template_fills_the_form(owner_client, ready):
    model, dataset = ready
    template = ExtractionTemplate.objects.create(
        name="mlp sweep",
        layer_indices=[1],
        hook_types=["mlp", "attention"],
        max_samples=30,
        batch_size=16,
        micro_batch_size=4,
        context_length=64,
        top_k_examples=7,
        context_prefix_tokens=3,
        context_suffix_tokens=9,
        dtype="float32",
    )
    html = owner_client.get(
        reverse("models_app:extract", args=[model.pk]),
        {"template": template.pk, "dataset": dataset.pk},
        **HTMX,
    ).content.decode()
    assert checked(html, "layers") == ["1"] and checked(html, "hooks") == ["mlp", "attention"]
    for name, value in (
        ("batch_size", "16"),
        ("micro_batch_size", "4"),
        ("max_samples", "30"),
        ("context_length", "64"),
        ("top_k", "7"),
        ("context_prefix_tokens", "3"),
        ("context_suffix_tokens", "9"),
    ):
        assert value_of(html, name) == value, name
    assert '<option value="float32" selected>' in html
    assert f'<option value="{dataset.pk}" selected>' in html  # the dataset chosen before stays
    assert "Loaded template “mlp sweep”" in html and 'id="too-deep"' not in html


def test_layers_beyond_the_models_depth_are_reported_not_dropped_silently(owner_client, ready):
    model, _ = ready
    template = ExtractionTemplate.objects.create(
        name="deep", layer_indices=[0, 1, 12, 31], hook_types=["residual"]
    )
    html = owner_client.get(
        reverse("models_app:extract", args=[model.pk]), {"template": template.pk}, **HTMX
    ).content.decode()
    assert checked(html, "layers") == ["0", "1"]
    report = re.search(r'<strong class="amber" id="too-deep">(.*?)</strong>', html).group(1)
    assert "Layers 12, 31 of the template do not exist in this model (layers 0 to 1)" in report


def test_save_as_template_suggests_a_name_then_saves_the_settings(owner_client, ready):
    model, dataset = ready
    url = reverse("templates_app:save-from-extraction", args=[model.pk])
    data = {
        "dataset": dataset.pk,
        "layers": ["0", "1"],
        "hooks": ["residual", "mlp"],
        "batch_size": "4",
        "micro_batch_size": "2",
        "max_samples": "12",
        "context_length": "32",
        "top_k": "5",
        "context_prefix_tokens": "10",
        "context_suffix_tokens": "4",
        "dtype": "float16",
    }
    before = timezone.localtime()
    html = owner_client.post(url, data, **HTMX).content.decode()
    suggested = re.search(r'name="template_name" value="([^"]+)"', html).group(1)
    assert re.fullmatch(r"residual-mlp_layers0-1_12samples_\d{4}", suggested)
    assert suggested[-4:] in {before.strftime("%H%M"), timezone.localtime().strftime("%H%M")}
    html = owner_client.post(url, {**data, "template_name": suggested}, **HTMX).content.decode()
    assert f"Saved as template “{suggested}”" in html
    saved = ExtractionTemplate.objects.get()
    assert (
        saved.layer_indices,
        saved.hook_types,
        saved.batch_size,
        saved.micro_batch_size,
        saved.max_samples,
        saved.context_length,
        saved.top_k_examples,
        saved.context_prefix_tokens,
        saved.context_suffix_tokens,
        saved.dtype,
    ) == ([0, 1], ["residual", "mlp"], 4, 2, 12, 32, 5, 10, 4, "float16")
    again = owner_client.post(url, data, **HTMX).content.decode()
    assert f'value="{suggested} (2)"' in again  # a taken name is not suggested


def test_a_bad_name_or_setting_is_said_and_nothing_is_saved(owner_client, ready):
    model, dataset = ready
    ExtractionTemplate.objects.create(name="taken", layer_indices=[0], hook_types=["mlp"])
    url = reverse("templates_app:save-from-extraction", args=[model.pk])
    data = {
        "dataset": dataset.pk,
        "layers": ["0"],
        "hooks": ["mlp"],
        "batch_size": "4",
        "context_length": "32",
        "top_k": "5",
        "dtype": "float16",
        "max_samples": "",
        "micro_batch_size": "",
    }
    html = owner_client.post(url, {**data, "template_name": "TAKEN"}, **HTMX).content.decode()
    assert 'id="template-error-name"' in html
    html = owner_client.post(url, {**data, "template_name": "   "}, **HTMX).content.decode()
    assert 'id="template-error-name"' in html
    html = owner_client.post(url, {**data, "hooks": [], "template_name": "no hooks"}, **HTMX).content.decode()
    assert 'id="template-error-hook_types">Hook types: ' in html
    assert ExtractionTemplate.objects.count() == 1


def test_template_names_with_html_are_escaped_in_the_modal(owner_client, ready):
    model, _ = ready
    ExtractionTemplate.objects.create(name="<script>alert(1)</script>", layer_indices=[0], hook_types=["mlp"])
    html = owner_client.get(reverse("models_app:extract", args=[model.pk]), **HTMX).content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_micro_batch_and_context_tokens_reach_the_record(owner_client, ready):
    model, dataset = ready
    data = {
        "dataset": dataset.pk,
        "layers": ["0"],
        "hooks": ["mlp"],
        "batch_size": "4",
        "micro_batch_size": "8",
        "context_length": "32",
        "top_k": "5",
        "dtype": "float16",
        "max_samples": "8",
    }
    html = owner_client.post(
        reverse("models_app:extract-start", args=[model.pk]), data, **HTMX
    ).content.decode()
    assert "A micro batch cannot be larger than the batch size." in html
    owner_client.post(
        reverse("models_app:extract-start", args=[model.pk]),
        {**data, "micro_batch_size": "2", "context_prefix_tokens": "5"},
        **HTMX,
    )
    from models_app.models import Extraction

    record = Extraction.objects.get()
    assert (record.micro_batch_size, record.context_prefix_tokens, record.context_suffix_tokens) == (2, 5, 25)
    assert record.status == "completed" and record.metadata["settings"]["micro_batch_size"] == 2


def test_empty_optional_fields_save_with_their_defaults(owner_client, ready):
    model, dataset = ready
    data = {
        "dataset": dataset.pk,
        "layers": ["1"],
        "hooks": ["attention"],
        "batch_size": "4",
        "context_length": "32",
        "top_k": "5",
        "dtype": "float16",
        "max_samples": "",
        "micro_batch_size": "",
        "context_prefix_tokens": "",
        "context_suffix_tokens": "",
        "template_name": "defaults",
    }
    html = owner_client.post(
        reverse("templates_app:save-from-extraction", args=[model.pk]), data, **HTMX
    ).content.decode()
    assert "Saved as template “defaults”" in html
    saved = ExtractionTemplate.objects.get()
    assert (
        saved.max_samples,
        saved.micro_batch_size,
        saved.context_prefix_tokens,
        saved.context_suffix_tokens,
    ) == (None, None, 25, 25)


def test_save_as_template_works_without_javascript(owner_client, ready):
    model, dataset = ready
    data = {
        "dataset": dataset.pk,
        "layers": ["0"],
        "hooks": ["mlp"],
        "batch_size": "4",
        "context_length": "32",
        "top_k": "5",
        "dtype": "float16",
        "max_samples": "10",
    }
    url = reverse("templates_app:save-from-extraction", args=[model.pk])
    html = owner_client.post(url, data).content.decode()
    assert "<html" in html and 'name="template_name" value="mlp_layers0-0_10samples_' in html
    assert re.search(r'<input type="checkbox" name="layers" value="0"[^>]*checked', html)  # the form is kept
    html = owner_client.post(url, {**data, "template_name": "plain"}).content.decode()
    assert "Saved as template “plain”" in html and ExtractionTemplate.objects.get().name == "plain"
