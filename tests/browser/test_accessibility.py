"""Every page and modal of the studio, in Chromium on the real server (daphne), checked with
axe-core at desktop and phone widths; at phone width no page scrolls sideways; and no page
asks for anything that is not there (the favicon included)."""

from __future__ import annotations

import pytest

from tests.browser.axe_check import problems
from tests.browser.pages import WATCH
from tests.browser.tour import tour

# Slow: Chromium through every page and modal, twice, with axe-core.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PHONE = 390


@pytest.fixture
def window(browser):
    """open(width) -> a fresh page of that width, and the list of what the browser refused or
    failed to load on it."""
    contexts = []

    def open_at(width: int):
        context = browser.new_context(viewport={"width": width, "height": 844})
        contexts.append(context)
        refused: list[str] = []
        context.expose_function("reportProblem", lambda text: refused.append(text))
        context.add_init_script(WATCH)
        page = context.new_page()
        page.set_default_timeout(30_000)

        # A favicon request is the browser's own: Playwright reports no response for it, but the
        # console says when it failed.
        def on_console(message) -> None:
            if "Failed to load resource" in message.text:
                refused.append(f"{message.text}: {message.location.get('url')} on {page.url}")

        def on_response(response) -> None:
            if response.status >= 400:
                refused.append(f"{response.status} {response.url} on {page.url}")

        page.on("console", on_console)
        page.on("response", on_response)
        return page, refused

    yield open_at
    for context in contexts:
        context.close()


@pytest.mark.parametrize("width", [1280, PHONE])
def test_it_finds_nothing_critical_or_serious_on_any_page_or_modal(studio, window, owner, extract, width):
    page, refused = window(width)
    found = {stop: problems(page) for stop in tour(page, studio, owner, extract())}
    assert {stop: lines for stop, lines in found.items() if lines} == {}
    assert refused == []  # axe ran under the pages' Content-Security-Policy, refused nothing


def test_it_never_scrolls_sideways_on_a_phone(studio, window, owner, extract):
    page, _refused = window(PHONE)
    widths = {
        stop: page.evaluate("document.documentElement.scrollWidth")
        for stop in tour(page, studio, owner, extract())
    }
    assert {stop: width for stop, width in widths.items() if width > PHONE} == {}
    page.goto(f"{studio}/")  # the navigation wraps onto the screen: every tab can be seen and used
    for tab in page.query_selector_all(".topbar nav a, .topbar .account a, .topbar .account button"):
        box = tab.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE, tab.inner_text()


def test_it_asks_for_nothing_missing_the_favicon_included(studio, window, owner, extract):
    page, refused = window(1280)
    stops = list(tour(page, studio, owner, extract()))
    assert len(stops) == 12 and refused == []
    icon = page.evaluate("fetch('/favicon.ico').then((r) => [r.status, r.headers.get('content-type')])")
    assert icon == [200, "image/svg+xml"]  # pages that name no icon (the admin's) get the studio's
