"""Every page and modal of the studio in Chromium, on the real server (daphne), under its
Content-Security-Policy: the browser refuses nothing, no script fails, the behaviours that moved
out of inline handlers still work, and the live websocket connects."""

from __future__ import annotations

import pytest

from models_app.models import LanguageModel
from templates_app.models import ExtractionTemplate
from tests.browser.pages import WATCH
from tests.browser.tour import sign_in, visit

# Slow: Chromium through every page and modal on daphne.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def watched(browser):
    """A fresh page that collects every policy refusal, htmx eval attempt and uncaught error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    context.expose_function("reportProblem", lambda text: problems.append(text))
    context.add_init_script(WATCH)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on(
        "console", lambda message: "Content Security Policy" in message.text and problems.append(message.text)
    )
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    yield page, problems
    context.close()


def settled(page, problems: list[str]) -> list[str]:
    """The problems so far, once the page has had time to report late ones."""
    page.evaluate("new Promise(function (done) { setTimeout(done, 300); })")
    return list(problems)


def test_it_runs_every_studio_page_and_modal_without_a_violation(studio, watched, owner, extract):
    page, problems = watched
    record = extract()
    model = record.model

    sign_in(page, studio)
    page.wait_for_selector("body.live")
    assert settled(page, problems) == []
    card = f"#model-{model.pk}"

    page.click(f"{card} a:has-text('Architecture')")
    page.wait_for_selector("#architecture-modal")
    assert page.evaluate("document.activeElement.id") == "architecture-modal"  # autofocus
    page.click("#architecture-modal [data-close-modal]")
    page.wait_for_selector("#architecture-modal", state="detached")
    page.click(f"{card} a:has-text('Architecture')")
    page.wait_for_selector("#architecture-modal")
    page.mouse.click(20, 450)  # the backdrop beside the modal
    page.wait_for_selector("#architecture-modal", state="detached")

    page.click(f"{card} a:has-text('Extract Activations')")
    page.wait_for_selector("#extract-modal")
    page.select_option("select[name=dataset]", index=1)
    page.click("button:has-text('Select All')")
    assert page.eval_on_selector_all(
        "#extract-form input[name=layers]", "boxes => boxes.every(b => b.checked)"
    )
    page.click("button:has-text('Deselect All')")
    assert page.eval_on_selector_all(
        "#extract-form input[name=layers]", "boxes => boxes.every(b => !b.checked)"
    )
    page.click("button:has-text('Select All')")
    page.wait_for_selector("#estimate-disk")  # the estimate shows figures once layers are chosen
    page.click("button:has-text('Save as template')")
    page.wait_for_selector("input[name=template_name]")
    page.click(".save-template button:has-text('Cancel')")
    page.wait_for_selector("input[name=template_name]", state="detached")
    page.click("button:has-text('Save as template')")
    page.press("input[name=template_name]", "Enter")  # saves the template, does not start an extraction
    page.wait_for_selector("#template-saved")
    assert ExtractionTemplate.objects.count() == 1 and model.extractions.count() == 1
    page.click("#extract-modal button[data-close-modal]")
    page.wait_for_selector("#extract-modal", state="detached")
    assert settled(page, problems) == []

    page.fill("input[name=repo_id]", "a/b/c")
    page.click("#download-form button.btn-primary")
    page.wait_for_selector("#error-repo_id")
    page.fill("input[name=repo_id]", "tiny/gpt2")
    page.click("#download-form button:has-text('Preview')")
    page.wait_for_selector(".preview-card")
    assert page.locator("#download-form .field-error").count() == 0  # a new question clears old errors

    for path in ("/datasets/", "/extractions/", f"/extractions/{record.pk}/"):
        visit(page, studio, path)
    page.wait_for_selector("#chart-mean-abs-residual svg rect.bar")
    visit(page, studio, f"/extractions/{record.pk}/examples/?target=layer_1_residual&neuron=3")
    page.wait_for_selector("#example-list .tok.peak")
    peak = page.eval_on_selector("#example-list .tok.peak", "t => getComputedStyle(t).backgroundColor")
    assert peak == "rgba(16, 185, 129, 0.55)"  # the strongest shade, from its class
    assert settled(page, problems) == []

    visit(page, studio, "/templates/")
    page.fill("#id_batch_size", "600")
    page.press("#id_batch_size", "Tab")
    page.wait_for_selector("#error-batch_size .field-error")  # validation as the user goes
    page.fill("#id_batch_size", "16")
    page.fill("#id_name", "csp probe")
    page.fill("#id_layer_indices", "0-1")
    page.click("#template-form label.toggle:has-text('mlp')")
    page.click("#template-form button[type=submit]")
    page.wait_for_selector("#template-list h3:has-text('csp probe')")
    probe = ExtractionTemplate.objects.get(name="csp probe")
    page.click(f"#template-{probe.pk} a:has-text('Edit')")
    page.wait_for_selector("#template-form h2:has-text('Edit')")
    page.click("#template-form a:has-text('Cancel')")
    page.wait_for_selector("#template-form h2:has-text('New template')")
    page.wait_for_selector("#import-form input[type=file]")
    assert settled(page, problems) == []

    visit(page, studio, "/account/tokens/")
    page.fill("input[name=name]", "notebook")
    page.click("button:has-text('Create token')")
    page.wait_for_selector("#new-token")
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.click("button:has-text('Revoke')")
    assert page.locator("button:has-text('Revoke')").count() == 1  # dismissed: still there
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Revoke')")
    page.wait_for_selector("button:has-text('Revoke')", state="detached")
    assert questions == ["Revoke notebook? Scripts using it stop working."]
    assert settled(page, problems) == []


def test_it_runs_the_login_admin_and_api_docs_without_a_violation(studio, watched, django_user_model):
    page, problems = watched
    django_user_model.objects.create_superuser("root", password="pw-root-123")  # every admin page
    model = LanguageModel.objects.create(name="llama", repo_id="tiny/llama", status="ready")
    template = ExtractionTemplate.objects.create(name="sweep", layer_indices=[0, 1], hook_types=["residual"])

    page.goto(f"{studio}/login/")
    assert settled(page, problems) == []
    sign_in(page, studio, "root", "pw-root-123")

    for path in (
        "/admin/",
        f"/admin/models_app/languagemodel/{model.pk}/change/",
        f"/admin/templates_app/extractiontemplate/{template.pk}/change/",
        "/admin/templates_app/extractiontemplate/import/",
    ):
        visit(page, studio, path, live=False)
        page.wait_for_selector("#site-name")
    assert settled(page, problems) == []

    visit(page, studio, "/api/v1/docs", live=False)
    page.wait_for_selector(".swagger-ui .opblock")  # the OpenAPI document was fetched and drawn
    page.click(".swagger-ui .opblock-summary")
    page.wait_for_selector(".swagger-ui .opblock-body")
    assert settled(page, problems) == []
