"""Datasets tab and extraction modal in a real browser, with real workers doing the jobs."""

from __future__ import annotations

import tarfile

import pytest

from models_app.models import Extraction

# Slow: Chromium and real qclusters.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


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
    page.click(
        "#extract-form button:has-text('Start extraction')"
    )  # nothing chosen yet: errors at the fields
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

    # Exported for an SAE trainer from the same page, the job on the downloads worker.
    exports = f"#extraction-{record.pk}-exports"
    page.check(f"{exports} input[value=layer_1_mlp]")
    page.select_option(f"{exports} select[name=format]", "tokens")
    page.click(f"{exports} button:has-text('Export')")
    page.wait_for_selector(".export-item .status-completed", timeout=60_000)
    with page.expect_download() as download:
        page.click(".export-item a:has-text('Download folder')")
    with tarfile.open(download.value.path()) as archive:
        names = sorted(member.name.split("/", 1)[1] for member in archive.getmembers())
    assert names == ["layer_1_mlp.npy", "manifest.json", "position.npy", "sample_index.npy", "token_ids.npy"]


def test_it_shows_the_submits_errors_as_the_estimate_follows_the_fields(page, live_server, owner):
    from tests.web.owned import dataset_of, model_of

    model = model_of(
        owner,
        architecture_config={
            "model_type": "llama",
            "num_hidden_layers": 2,
            "hidden_size": 64,
            "num_attention_heads": 4,
            "max_position_embeddings": 256,
        },
    )
    dataset_of(owner)
    page.goto(f"{live_server.url}/models/{model.pk}/extract/")
    missing = page.wait_for_selector("#estimate-missing")
    assert (
        "Choose a dataset." in missing.inner_text() and "Select at least one layer." in missing.inner_text()
    )
    assert page.query_selector("#error-layers") is None  # a choice not made yet is not an error
    page.select_option("select[name=dataset]", index=1)
    page.check("input[name=layers][value='0']")
    page.wait_for_selector("#estimate-disk")

    page.fill("input[name=batch_size]", "600")
    assert page.wait_for_selector("#error-batch_size").inner_text() == "Batch size must be between 1 and 512."
    page.wait_for_selector("#estimate-invalid")
    assert page.query_selector("#estimate-disk") is None  # no figures for settings the submit refuses
    assert page.input_value("input[name=batch_size]") == "600"  # what the user typed stays, focused
    assert page.evaluate("document.activeElement.name") == "batch_size"

    page.fill("input[name=batch_size]", "4")
    page.fill("input[name=context_length]", "4096")
    assert (
        page.wait_for_selector("#error-context_length").inner_text() == "This model reads at most 256 tokens."
    )
    assert page.query_selector("#error-batch_size") is None
    page.fill("input[name=context_length]", "64")
    page.wait_for_selector("#estimate-disk")
    assert page.query_selector("#extract-form .field-error") is None
