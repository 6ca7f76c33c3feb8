"""Live updates change what a job reports, never what the user is doing: on the studio's real
server (daphne) with real workers, while jobs push updates over the websocket several times a
second, an open rename keeps its text, a refusal stays readable, new records appear in the list,
and the page's own messages show."""

from __future__ import annotations

import subprocess
import sys
import time
from io import StringIO

import pytest
from django.core.management import call_command

from models_app.models import Dataset, Extraction, LanguageModel
from models_app.services import extractions as extraction_services
from tests.browser.pages import signed_in_page
from tests.workers import ROOT, cancel_running_jobs, start_daphne, start_qcluster, stop, studio_env

# Slow: Chromium on daphne with real qclusters.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def studio(hub, settings, monkeypatch):
    """daphne and both qclusters on the test database, as run_studio starts them."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    web, url = start_daphne(settings, hub.endpoint)
    workers = [start_qcluster(settings, hub.endpoint), start_qcluster(settings, hub.endpoint, cluster="gpu")]
    yield url
    hub.clear_faults()
    cancel_running_jobs()
    stop(web, *workers)


def console_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    return errors


def slow_download(page, hub) -> LanguageModel:
    hub.repos["tiny/llama"].bytes_per_second = 100_000  # about 15 s of transfer
    page.fill("input[name=repo_id]", "tiny/llama")
    page.click("#download-form button.btn-primary")
    page.wait_for_selector("#model-list .card .progress-meta")
    return LanguageModel.objects.get()


def test_it_keeps_an_open_rename_through_live_updates_and_saves_it(browser, studio, owner, hub):
    page = signed_in_page(browser, studio)
    page.wait_for_selector("body.live")
    errors = console_errors(page)
    record = slow_download(page, hub)
    card = f"#model-{record.pk}"
    page.click(f"{card} a:has-text('Rename')")
    page.fill(f"{card} .rename-form input[name=name]", "my llama")
    before = page.inner_text(f"{card} .progress-meta")
    time.sleep(5)  # a dozen updates arrive meanwhile
    assert page.inner_text(f"{card} .progress-meta") != before  # the job's numbers moved...
    assert page.input_value(f"{card} .rename-form input[name=name]") == "my llama"  # ...the rename stayed
    page.press(f"{card} .rename-form input[name=name]", "Enter")
    page.wait_for_selector(f"{card} h3.card-title:has-text('my llama')")
    assert LanguageModel.objects.get(pk=record.pk).name == "my llama" and errors == []


def test_it_refuses_an_empty_name_in_the_form_and_escape_cancels_it(browser, studio, owner, hub):
    page = signed_in_page(browser, studio)
    page.wait_for_selector("body.live")
    record = slow_download(page, hub)
    card = f"#model-{record.pk}"
    page.click(f"{card} a:has-text('Rename')")
    page.fill(f"{card} .rename-form input[name=name]", "")
    page.press(f"{card} .rename-form input[name=name]", "Enter")
    page.wait_for_selector(f"{card} .rename-form .field-error")  # in the card, the card still whole
    assert page.is_visible(f"{card} .progress-meta")
    page.press(f"{card} .rename-form input[name=name]", "Escape")
    page.wait_for_selector(f"{card} h3.card-title:has-text('llama')")
    assert page.query_selector(f"{card} .rename-form") is None


def test_a_refusal_stays_readable_while_an_extraction_runs(browser, studio, owner, hub, settings):
    call_command(
        "download_model", "tiny/llama", "--quantization", "fp32", stdout=StringIO(), stderr=StringIO()
    )
    corpus = settings.DATASETS_DIR.parent / "long.txt"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    corpus.write_text("".join(f"Sample {i}: the residual stream at layer {i % 4}.\n" for i in range(8000)))
    call_command("add_dataset", str(corpus), "--name", "long", stdout=StringIO())
    model, dataset = LanguageModel.objects.get(), Dataset.objects.get()
    page = signed_in_page(browser, studio)
    page.wait_for_selector("body.live")
    extraction_services.create(
        model=model,
        dataset=dataset,
        layers=[0, 1],
        hooks=["residual", "mlp"],
        batch_size=4,
        max_samples=8000,
        context_length=64,
        top_k=5,
        dtype="float32",
        owner=owner,
    )  # queued for the gpu worker
    card = f"#model-{model.pk}"
    page.wait_for_selector(f"{card} .extraction-line .status-extracting", timeout=60_000)
    page.click(f"{card} .restart-form button")
    message = page.wait_for_selector(f"{card} .card-error[data-user-owned]")
    assert "cancel it first" in message.inner_text()
    time.sleep(5)
    assert "cancel it first" in page.inner_text(f"{card} .card-error[data-user-owned]")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click(
        f"{card} button:has-text('Cancel extraction')"
    )  # the running extraction, from its model's card
    page.wait_for_selector(f"{card} .extraction-line .status-cancelled", timeout=15_000)
    assert Extraction.objects.get().status == "cancelled"


def test_a_download_started_from_the_terminal_appears_on_an_open_page(browser, studio, owner, hub, settings):
    hub.repos["tiny/gpt2"].bytes_per_second = 100_000
    page = signed_in_page(browser, studio)
    page.wait_for_selector("body.live")
    errors = console_errors(page)
    command = subprocess.Popen(
        [sys.executable, "manage.py", "download_model", "tiny/gpt2", "--quantization", "fp16"],
        cwd=ROOT,
        env=studio_env(settings, hub.endpoint),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not LanguageModel.objects.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        created = time.monotonic()
        page.wait_for_selector(f"#model-{LanguageModel.objects.get().pk}", timeout=10_000)
        assert time.monotonic() - created < 3
    finally:
        command.terminate()
        command.wait(20)
    assert not [e for e in errors if "oobErrorNoTarget" in e or "targetError" in e]


def answer_late(route) -> None:
    answer = route.fetch()
    time.sleep(1)
    route.fulfill(response=answer)


def test_deleting_a_model_shows_what_it_freed(browser, studio, owner, hub):
    call_command(
        "download_model", "tiny/llama", "--quantization", "fp16", stdout=StringIO(), stderr=StringIO()
    )
    page = signed_in_page(browser, studio)
    page.wait_for_selector("body.live")  # the page's scripts have started
    errors = console_errors(page)
    record = LanguageModel.objects.get()
    page.on("dialog", lambda dialog: dialog.accept())
    # The answer is held back a second, so the live update that removes the card always arrives
    # first, as it often does on a busy machine: the toast must still show.
    page.route("**/delete/", answer_late)
    page.click(f"#model-{record.pk} button:has-text('Delete')")
    toast = page.wait_for_selector("#toasts .toast-item", timeout=10_000)
    assert toast.inner_text().startswith(f"Deleted {record.name} — freed ")
    assert page.query_selector(f"#model-{record.pk}") is None and errors == []
