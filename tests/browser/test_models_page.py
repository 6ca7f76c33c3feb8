"""The Models page in a real browser: htmx swaps, polling to ready, the modal, rename, delete."""

from __future__ import annotations

import pytest

from models_app.models import LanguageModel

# Slow: Chromium and real qclusters.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_user_previews_downloads_watches_inspects_renames_and_deletes(page, worker, hub, settings):
    hub.repos["tiny/llama"].bytes_per_second = 600_000  # a few seconds of visible progress

    page.fill("input[name=repo_id]", "a/b/c")
    page.click("#download-form button.btn-primary")
    assert "single slash" in page.inner_text("#error-repo_id")

    page.fill("input[name=repo_id]", "tiny/llama")
    page.click("#download-form button:has-text('Preview')")
    preview = page.wait_for_selector(".preview-card")
    assert "427K" in preview.inner_text() and "Q2" in preview.inner_text()
    assert page.locator(".card").count() == 0  # previewing typed text never filters the list

    page.select_option("select[name=quantization]", "q8")
    page.click("#download-form button.btn-primary")
    page.wait_for_selector("#model-list .card")
    record = LanguageModel.objects.get()
    card = f"#model-{record.pk}"
    page.wait_for_selector(f"{card} .progress-meta")  # bytes, speed and ETA while downloading
    assert "ETA" in page.inner_text(f"{card} .progress-meta")
    page.wait_for_selector(f"{card}.status-ready", timeout=90_000)  # polled until ready
    assert page.input_value("input[name=repo_id]") == ""
    assert "Q8" in page.inner_text(card)

    page.click(f"{card} a:has-text('Architecture')")
    modal = page.wait_for_selector("#architecture-modal")
    assert "llama Architecture" in modal.inner_text() and "model.layers.{i}.mlp" in modal.inner_text()
    page.keyboard.press("Escape")
    page.wait_for_selector("#architecture-modal", state="detached")

    page.click(f"{card} a:has-text('Rename')")
    page.fill(f"{card} input[name=name]", "Llama for probing")
    page.click(f"{card} button:has-text('Save')")
    page.wait_for_selector(f"{card} .card-title:has-text('Llama for probing')")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"{card} button:has-text('Delete')")
    toast = page.wait_for_selector(".toast-item")
    assert "Deleted Llama for probing" in toast.inner_text() and "freed" in toast.inner_text()
    assert page.locator(card).count() == 0
    assert not LanguageModel.objects.exists()
    assert not (settings.HF_CACHE_DIR / "models--tiny--llama").exists()


def test_the_page_fits_an_800px_window(page):
    page.set_viewport_size({"width": 800, "height": 900})
    page.reload()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0


def test_the_errors_on_screen_belong_to_the_last_submit(page, hub):
    page.fill("input[name=repo_id]", "tiny/unknown")
    page.click("#download-form button:has-text('Preview')")
    assert "was not found" in page.wait_for_selector("#preview-error-repo_id").inner_text()

    page.fill("input[name=repo_id]", "a/b/c")
    page.click("#download-form button.btn-primary")
    assert "single slash" in page.wait_for_selector("#error-repo_id").inner_text()
    assert page.inner_text("#preview").strip() == ""  # the 404 went with the submit it answered

    page.fill("input[name=repo_id]", "tiny/unknown")
    page.click("#download-form button:has-text('Preview')")
    page.wait_for_selector("#preview-error-repo_id")
    assert page.locator("#download-form .field-error, #download-form .has-error").count() == 0

    page.fill("input[name=repo_id]", "tiny/llama")
    page.click("#download-form button:has-text('Preview')")
    page.wait_for_selector(".preview-card")
    assert page.locator("#preview-error-repo_id").count() == 0


def test_a_duplicate_is_reported_next_to_the_repository_field(page, hub):
    LanguageModel.objects.create(
        name="llama", repo_id="tiny/llama", revision="main", quantization="q4", status="ready"
    )
    page.reload()
    page.fill("input[name=repo_id]", "tiny/llama")
    page.click("#download-form button.btn-primary")
    error = page.wait_for_selector("#download-form label:has(input[name=repo_id]) #error-repo_id")
    assert (
        error.inner_text() == "Already downloaded: tiny/llama@main in Q4 is in the studio (“llama”, ready)."
    )
    assert LanguageModel.objects.count() == 1
