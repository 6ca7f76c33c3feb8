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

from tests.browser.pages import signed_in_page
from tests.comparisons.fixtures import formats  # noqa: F401 (fixtures)
from tests.exports.fixtures import engine_folder  # noqa: F401 (fixtures)
from tests.workers import cancel_running_jobs, start_clusters, start_daphne, stop

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
    processes = start_clusters(settings, hub.endpoint, monkeypatch)
    yield processes
    hub.clear_faults()
    cancel_running_jobs()
    stop(*processes)


@pytest.fixture
def studio(hub, settings):
    """The studio's real web server (daphne, as run_studio starts it) on the test database, with
    no workers; its URL. Modules whose pages need jobs done override it with one that starts
    qclusters too."""
    web, url = start_daphne(settings, hub.endpoint)
    yield url
    stop(web)


@pytest.fixture
def page(browser, live_server, owner):
    page = signed_in_page(browser, live_server.url)
    yield page
    page.context.close()
