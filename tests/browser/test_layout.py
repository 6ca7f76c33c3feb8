"""What a user looks at is in view: at desktop width the download panel is a sticky column and a
preview fits under the form in the first screen; on a narrow window the form folds away once there
are models, so the list is in the first screen."""

from __future__ import annotations

import os

import pytest

from models_app.models import LanguageModel

# Slow: Chromium.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# A folder to save what each test saw, to look at: MISTUDIO_SCREENSHOTS=/tmp pytest ...
SHOTS = os.environ.get("MISTUDIO_SCREENSHOTS")


def shot(page, name):
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/{name}.png")


def bottom(box):
    return box["y"] + box["height"]


def add_models(count):
    for i in range(count):
        LanguageModel.objects.create(
            name=f"model-{i}", repo_id=f"org/m{i}", quantization="q4", status="ready"
        )


def test_it_shows_the_preview_without_scrolling_at_desktop_width(page, hub):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.reload()
    panel, models = page.locator(".download-panel").bounding_box(), page.locator(".list-panel").bounding_box()
    assert models["x"] >= panel["x"] + panel["width"] and models["y"] == panel["y"]  # side by side

    page.fill("input[name=repo_id]", "tiny/llama")
    page.click("#download-form button:has-text('Preview')")
    card = page.wait_for_selector(".preview-card")
    shot(page, "layout-desktop-preview")
    assert page.evaluate("window.scrollY") == 0
    assert bottom(card.bounding_box()) <= 800
    assert "427K" in card.inner_text() and "Q2" in card.inner_text()


def test_the_download_column_stays_in_view_and_open_while_the_list_scrolls(page, hub):
    add_models(12)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.reload()
    page.click(".download-details summary")  # its heading is not a toggle in the column
    assert page.evaluate("document.getElementById('download-details').open")
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    assert page.evaluate("window.scrollY") > 400
    shot(page, "layout-desktop-scrolled")
    form = page.locator("#download-form").bounding_box()
    assert form["y"] >= 0 and bottom(form) <= 800
    page.fill("input[name=repo_id]", "tiny/llama")  # usable where it is
    page.click("#download-form button:has-text('Preview')")
    page.wait_for_selector(".preview-card")


def test_it_shows_the_model_list_in_the_first_screen_of_a_narrow_window(page, hub):
    add_models(1)
    page.set_viewport_size({"width": 800, "height": 900})
    page.reload()
    shot(page, "layout-narrow-list")
    assert not page.is_visible("#download-form")
    assert bottom(page.locator(".list-panel h2").bounding_box()) <= 900
    assert bottom(page.locator("#model-list .card").first.bounding_box()) <= 900

    page.click("summary:has-text('Download a model')")
    page.fill("input[name=repo_id]", "tiny/llama")
    page.click("#download-form button:has-text('Preview')")
    page.wait_for_selector(".preview-card")
    shot(page, "layout-narrow-open")
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0


def test_a_narrow_window_opens_the_form_while_there_are_no_models(page, hub):
    page.set_viewport_size({"width": 800, "height": 900})
    page.reload()
    shot(page, "layout-narrow-empty")
    assert page.is_visible("input[name=repo_id]")
    assert bottom(page.locator(".list-panel h2").bounding_box()) <= 900
