"""Modals and the keyboard: a modal takes the focus when it opens, Tab stays inside it, and
however it closes (Escape, its close link, the backdrop, a submit that starts an extraction) the
focus returns to the button that opened it."""

from __future__ import annotations

import pytest

# Slow: Chromium.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FOCUS_INSIDE = "selector => !!document.activeElement.closest(selector)"


def open_by_keyboard(page, opener: str, modal: str) -> None:
    page.focus(opener)
    page.keyboard.press("Enter")
    page.wait_for_selector(modal)  # shown: open, once a <dialog>


def focused_is(page, selector: str) -> bool:
    return page.locator(selector).evaluate("element => element === document.activeElement")


@pytest.fixture
def card(page, live_server, ready):
    model, _dataset = ready
    page.goto(f"{live_server.url}/")
    return f"#model-{model.pk}"


@pytest.mark.parametrize(
    "button, modal", [("Architecture", "#architecture-modal"), ("Extract Activations", "#extract-modal")]
)
def test_it_returns_focus_to_the_opener_on_escape(page, card, button, modal):
    opener = f"{card} a:has-text('{button}')"
    open_by_keyboard(page, opener, modal)
    assert page.evaluate(FOCUS_INSIDE, modal), "the modal took the focus"

    page.keyboard.press("Escape")
    page.wait_for_selector(modal, state="detached")
    assert focused_is(page, opener)


def test_it_keeps_tab_inside_an_open_modal(page, card):
    open_by_keyboard(page, f"{card} a:has-text('Extract Activations')", "#extract-modal")
    stops = page.eval_on_selector_all(
        "#extract-modal a[href], #extract-modal button, #extract-modal input:not([type=hidden]), "
        "#extract-modal select",
        "elements => elements.length",
    )
    for key in ("Tab", "Shift+Tab"):
        seen = set()
        for _ in range(stops + 3):  # past the last element and round again
            page.keyboard.press(key)
            assert page.evaluate(FOCUS_INSIDE, "#extract-modal"), (
                f"{key} left the modal for {page.evaluate('document.activeElement.outerHTML.slice(0, 80)')}"
            )
            seen.add(page.evaluate("document.activeElement.outerHTML"))
        assert len(seen) > 10  # it went through the modal's fields, not stuck on one


def test_it_returns_focus_to_the_opener_from_the_close_link_and_the_backdrop(page, card):
    opener = f"{card} a:has-text('Architecture')"
    open_by_keyboard(page, opener, "#architecture-modal")
    page.keyboard.press("Tab")  # the close link
    assert focused_is(page, "#architecture-modal [data-close-modal]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#architecture-modal", state="detached")
    assert focused_is(page, opener)

    page.click(opener)
    page.wait_for_selector("#architecture-modal")
    page.mouse.click(20, 450)  # the backdrop beside the modal
    page.wait_for_selector("#architecture-modal", state="detached")
    assert focused_is(page, opener)


def test_it_returns_focus_to_the_opener_after_a_submit_that_closes_the_modal(page, card):
    opener = f"{card} a:has-text('Extract Activations')"
    open_by_keyboard(page, opener, "#extract-modal")
    page.click("#extract-form button:has-text('Start extraction')")  # refused: nothing chosen
    page.wait_for_selector("#extract-modal #error-dataset")
    assert focused_is(page, "#extract-form select[name=dataset]"), "the refused field has the focus"

    page.select_option("#extract-form select[name=dataset]", index=1)
    page.click("#extract-form button:has-text('Select All')")
    page.click("#extract-form button:has-text('Start extraction')")
    page.wait_for_selector("#extract-modal", state="detached", timeout=60_000)
    page.wait_for_selector(f"{card} .extraction-line")
    assert focused_is(page, opener)
