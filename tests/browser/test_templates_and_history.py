"""A researcher saves a template from the extraction modal, loads it for another model, runs it,
and reads the result in the history: a chart and a neuron's top examples. Real Chromium, real
workers."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from models_app.models import Extraction, LanguageModel
from templates_app.models import ExtractionTemplate

# Slow: Chromium and real qclusters.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def two_models(hub):
    for repo in ("tiny/llama", "tiny/gpt2"):
        call_command("download_model", repo, "--quantization", "fp32", stdout=StringIO(), stderr=StringIO())
    call_command("add_dataset", "data/corpus", "--name", "corpus", stdout=StringIO())
    return LanguageModel.objects.get(repo_id="tiny/llama"), LanguageModel.objects.get(repo_id="tiny/gpt2")


def test_save_a_template_load_it_for_another_model_and_browse_the_result(
    two_models, worker, page, live_server
):
    llama, gpt2 = two_models
    page.goto(f"{live_server.url}/")
    page.click(f"#model-{llama.pk} a:has-text('Extract Activations')")
    page.wait_for_selector("#extract-modal")
    page.click("button:has-text('Select All')")
    page.click("label.toggle:has-text('Residual Stream')")  # off
    page.click("label.toggle:has-text('MLP Output')")
    page.fill("input[name=max_samples]", "16")
    page.fill("input[name=top_k]", "4")
    page.click("button:has-text('Save as template')")
    name = page.wait_for_selector("input[name=template_name]").input_value()
    assert name.startswith("mlp_layers0-1_16samples_")
    page.click("button:has-text('Save template')")
    assert name in page.wait_for_selector("#template-saved").inner_text()
    template = ExtractionTemplate.objects.get()
    assert (
        template.layer_indices == [0, 1] and template.hook_types == ["mlp"] and template.top_k_examples == 4
    )
    page.keyboard.press("Escape")
    page.wait_for_selector("#extract-modal", state="detached")

    page.click(f"#model-{gpt2.pk} a:has-text('Extract Activations')")
    page.wait_for_selector("#extract-modal")
    page.select_option("select[name=template]", label=name)
    page.wait_for_selector("#template-loaded")
    assert page.is_checked("#extract-form input[name=layers][value='1']")
    assert page.is_checked("#extract-form input[name=hooks][value='mlp']")
    assert not page.is_checked("#extract-form input[name=hooks][value='residual']")
    assert page.input_value("input[name=max_samples]") == "16"
    page.select_option("select[name=dataset]", index=1)
    page.click("#extract-form button:has-text('Start extraction')")
    page.wait_for_selector("#extract-modal", state="detached")
    page.wait_for_selector(f"#model-{gpt2.pk} .extraction-line .status-completed", timeout=90_000)
    record = Extraction.objects.get()
    assert record.model_id == gpt2.pk and record.top_k == 4 and record.samples_done == 16

    page.click(f"#model-{gpt2.pk} a:has-text('History')")
    page.wait_for_selector(f"#extraction-row-{record.pk}")
    page.click(f"#extraction-row-{record.pk} a:has-text('Open')")
    bars = page.wait_for_selector("#chart-mean-abs-mlp svg").query_selector_all("rect.bar")
    assert len(bars) == 2  # one bar per layer
    page.click("#open-examples")
    page.select_option("select[name=target]", "layer_1_mlp")
    page.fill("input[name=neuron]", "5")
    page.click("#neuron-form button[type=submit]")
    page.wait_for_selector("#example-list")
    assert len(page.query_selector_all("#example-list li.example")) == 4
    assert len(page.query_selector_all("#example-list .tok.peak")) == 4
