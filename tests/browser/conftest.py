"""Real Chromium (Debian's package, installed by .ci/run) driven by Playwright against a live
server, with a real qcluster doing the jobs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make between
# browser steps are ordinary synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from tests.workers import start_qcluster, stop

CHROMIUM = os.environ.get("MISTUDIO_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is missing at {CHROMIUM}: .ci/run installs it")
        pytest.skip("Chromium is not installed here (apt-get install chromium); CI installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield instance
        instance.close()


@pytest.fixture
def worker(hub, live_server, settings, monkeypatch):
    """Real qclusters on the ORM broker, sharing the test database and storage: the downloads
    cluster and the gpu cluster (extractions), as run_studio starts them."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    processes = [
        start_qcluster(settings, hub.endpoint),
        start_qcluster(settings, hub.endpoint, cluster=settings.GPU_CLUSTER),
    ]
    yield processes
    stop(*processes)


def signed_in_page(browser, url: str):
    """A new browser context signed in as the `owner` fixture's user at the studio at `url`."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{url}/login/")
    page.fill("input[name=username]", "owner")
    page.fill("input[name=password]", "pw-owner-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
    return page


@pytest.fixture
def page(browser, live_server, owner):
    page = signed_in_page(browser, live_server.url)
    yield page
    page.context.close()
