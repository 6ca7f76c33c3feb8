"""Datasets tab and extraction modal in a real browser, with real workers doing the jobs."""
from __future__ import annotations

import pytest

from models_app.models import Extraction

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_user_uploads_a_dataset_and_extracts_activations(page, worker, live_server, tmp_path, settings):
    page.fill("input[name=repo_id]", "tiny/gpt2")
    page.select_option("select[name=quantization]", "fp16")
    page.click("#download-form button.btn-primary")
    page.wait_for_selector("#model-list .card.status-ready", timeout=90_000)

    corpus = tmp_path / "notes.txt"
    corpus.write_text("".join(f"Line {i}: attention heads move information.\n" for i in range(20)))
    page.click("a.tab:has-text('Datasets')")
    page.set_input_files("#upload-form input[type=file]", str(corpus))
    page.click("#upload-form button[type=submit]")
    assert "20" in page.wait_for_selector("#dataset-list .card").inner_text()

    page.click("a.tab:has-text('Models')")
    page.click("#model-list a:has-text('Extract Activations')")
    page.wait_for_selector("#extract-modal")
    page.click("#extract-form button:has-text('Start extraction')")  # nothing chosen yet: errors at the fields
    assert "Choose a dataset." in page.inner_text("#error-dataset")
    assert "Select at least one layer." in page.inner_text("#error-layers")
    page.select_option("select[name=dataset]", index=1)
    page.click("button:has-text('Select All')")
    page.click("label.toggle:has-text('MLP Output')")
    page.wait_for_selector("#extract-estimate:has-text('4 files')")
    page.click("#extract-form button:has-text('Start extraction')")
    page.wait_for_selector("#extract-modal", state="detached")
    line = page.wait_for_selector(".extraction-line .status-completed", timeout=90_000)
    assert line.inner_text() == "Completed"
    record = Extraction.objects.get()
    assert record.layers == [0, 1] and record.hooks == ["residual", "mlp"]
    page.click(".extraction-line a")
    assert "layer_1_mlp.npy" in page.wait_for_selector(".stats-table").inner_text()
    assert (settings.ACTIVATIONS_DIR / str(record.pk) / "layer_1_mlp.npy").exists()
