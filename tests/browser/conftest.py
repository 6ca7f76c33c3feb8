"""Real Chromium (Debian's package, installed by .ci/run) driven by Playwright against a live
server, with a real qcluster doing the jobs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make between
# browser steps are ordinary synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("MISTUDIO_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]


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
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield instance
        instance.close()


@pytest.fixture
def worker(hub, live_server, settings, monkeypatch):
    """Real qclusters on the ORM broker, sharing the test database and storage."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "MISTUDIO_Q_SYNC": "0",
           "MISTUDIO_TEST_DB": str(settings.DATABASES["default"]["NAME"]),
           "MISTUDIO_DATA_DIR": str(settings.MODELS_DIR.parent), "HF_ENDPOINT": hub.endpoint,
           "SECRET_KEY": settings.SECRET_KEY}  # tasks are signed with it
    # The downloads cluster and the gpu cluster (extractions), as run_studio starts them.
    processes = [subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT,
                                  env={**env, **extra}, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
                 for extra in ({}, {"Q_CLUSTER_NAME": settings.GPU_CLUSTER})]
    yield processes
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def page(browser, live_server, owner):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "owner")
    page.fill("input[name=password]", "pw-owner-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    yield page
    context.close()
