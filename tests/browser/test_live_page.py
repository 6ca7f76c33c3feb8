"""The Models page on the studio's real ASGI server (daphne): progress arrives over the
websocket with no polling while a slow download runs, and Cancel ends the job within 2 s."""

from __future__ import annotations

import re
import time

import pytest
from django.utils import timezone

from models_app.models import LanguageModel
from tests.browser.pages import signed_in_page
from tests.workers import cancel_running_jobs, start_daphne, start_qcluster, stop

# Slow: Chromium on daphne with a real qcluster.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def studio(hub, settings, monkeypatch):
    """daphne and a downloads qcluster on the test database, as run_studio starts them."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    web, url = start_daphne(settings, hub.endpoint)
    worker = start_qcluster(settings, hub.endpoint)
    yield url
    hub.clear_faults()
    cancel_running_jobs()
    stop(web, worker)


def test_progress_arrives_over_the_websocket_and_cancel_stops_the_job(browser, studio, owner, hub):
    hub.repos["tiny/llama"].bytes_per_second = 150_000  # about 10 s of transfer
    page = signed_in_page(browser, studio)
    page.wait_for_selector("body.live")  # the socket is open

    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.fill("input[name=repo_id]", "tiny/llama")
    page.click("#download-form button.btn-primary")
    page.wait_for_selector("#model-list .card")
    record = LanguageModel.objects.get()
    meta = f"#model-{record.pk} .progress-meta"
    page.wait_for_selector(meta)
    seen = set()
    deadline = time.monotonic() + 15
    while len(seen) < 3 and time.monotonic() < deadline:  # the bytes move on screen
        seen.add(page.inner_text(meta).split(" / ")[0])
        time.sleep(0.3)
    assert len(seen) >= 3, seen
    polls = [url for url in requests if re.search(rf"/models/{record.pk}/$", url)]
    assert polls == []  # every update came over the socket

    page.on("dialog", lambda dialog: dialog.accept())  # "Cancel the download of llama? ..."
    clicked = time.monotonic()
    page.click(f"#model-{record.pk} button:has-text('Cancel')")
    deadline = clicked + 10
    while LanguageModel.objects.get(pk=record.pk).status != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert time.monotonic() - clicked < 2.0
    page.wait_for_selector(f"#model-{record.pk}.status-cancelled")
    page.context.close()


def test_the_page_reconnects_after_a_server_restart_and_catches_up(browser, hub, settings, owner):
    web, url = start_daphne(settings, hub.endpoint)
    record = LanguageModel.objects.create(
        name="llama",
        repo_id="tiny/llama",
        status="downloading",
        bytes_total=1_000_000,
        phase_detail="Downloading model.safetensors",
    )
    page = signed_in_page(browser, url)
    try:
        page.wait_for_selector("body.live")
        stop(web)
        page.wait_for_selector("body:not(.live)")
        # While the server is down the job goes on; the page must catch up when it returns.
        LanguageModel.objects.filter(pk=record.pk).update(
            phase_detail="Downloading the last file", heartbeat_at=timezone.now()
        )
        web, _ = start_daphne(settings, hub.endpoint, port=int(url.rsplit(":", 1)[1]))
        page.wait_for_selector("body.live")
        page.wait_for_selector(f"#model-{record.pk}:has-text('Downloading the last file')")
    finally:
        page.context.close()
        stop(web)
