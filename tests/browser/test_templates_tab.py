"""The Templates tab in real Chromium: the htmx wiring (search as you type, validation as the user
goes, the list reloading after a save, the star, delete with its confirmation) works in a browser,
not only in the server's answers."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from templates_app.models import ExtractionTemplate

# Slow: Chromium.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_create_search_star_edit_and_delete_templates(page, live_server, tmp_path):
    ExtractionTemplate.objects.create(
        name="<b>bold</b> sweep", description="early layers", layer_indices=[0, 1, 2], hook_types=["residual"]
    )
    page.goto(f"{live_server.url}/templates/")
    assert page.inner_text("#template-list .card-title") == "<b>bold</b> sweep"

    # Validation as the user goes: a field's errors appear when it changes, before any submit.
    page.fill("#id_batch_size", "600")
    page.press("#id_batch_size", "Tab")
    page.wait_for_selector("#error-batch_size .field-error")
    assert page.inner_text("#error-batch_size") == "Must be between 1 and 512."
    page.fill("#id_batch_size", "16")
    page.press("#id_batch_size", "Tab")
    page.wait_for_selector("#error-batch_size .field-error", state="detached")

    page.fill("#id_name", "mlp probe")
    page.fill("#id_layer_indices", "4, 2-3")
    page.click("label.toggle:has-text('mlp')")
    page.click("#template-form button[type=submit]")
    page.wait_for_selector("#template-form-note")
    page.wait_for_selector("#template-list h3:has-text('mlp probe')")  # the list reloaded itself
    page.screenshot(path=str(tmp_path / "templates.png"), full_page=True)
    created = ExtractionTemplate.objects.get(name="mlp probe")
    assert created.layer_indices == [2, 3, 4] and created.hook_types == ["mlp"] and created.batch_size == 16

    page.fill("input[name=q]", "early")
    expect(page.locator("#template-list article")).to_have_count(1)
    assert "q=early" in page.url
    page.fill("input[name=q]", "")
    expect(page.locator("#template-list article")).to_have_count(2)

    page.click(f"#template-{created.pk} button.star")
    page.wait_for_selector(f"#template-{created.pk}.is-favorite")
    assert ExtractionTemplate.objects.get(pk=created.pk).is_favorite

    page.click(f"#template-{created.pk} a:has-text('Edit')")
    page.wait_for_selector("#template-form h2:has-text('Edit “mlp probe”')")
    assert page.input_value("#id_layer_indices") == "2-4"
    page.fill("#id_context_length", "256")
    page.click("#template-form button[type=submit]")
    page.wait_for_selector(f"#template-{created.pk}:has-text('256 tokens')")

    messages = []
    page.on("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    page.click(f"#template-{created.pk} button:has-text('Delete')")
    page.wait_for_selector(f"#template-{created.pk}", state="detached")
    assert messages == ["Delete the template “mlp probe”?"]
    assert not ExtractionTemplate.objects.filter(pk=created.pk).exists()
