"""Comparing formats in the browser, on the studio's real server (daphne) with a real qcluster:
two extractions ticked on the Extractions list stay ticked while a live update redraws their
rows, "Compare selected" opens the comparison, and its job's result arrives on the open page
over the websocket, naming where the narrower format departs most."""

from __future__ import annotations

import pytest
from django.utils import timezone

from models_app.models import Comparison, Extraction
from tests.browser.pages import signed_in_page
from tests.workers import cancel_running_jobs, start_daphne, start_qcluster, stop

# Slow: Chromium on daphne with a real qcluster.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def studio(hub, settings, monkeypatch):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    web, url = start_daphne(settings, hub.endpoint)
    worker = start_qcluster(settings, hub.endpoint)  # comparisons run on the downloads' queue
    yield url
    cancel_running_jobs()
    stop(web, worker)


def test_ticked_rows_survive_a_live_update_and_the_result_arrives_live(browser, studio, formats):
    records = formats()
    fp32, q4 = records["fp32"], records["q4"]
    page = signed_in_page(browser, studio)
    pushed: list[str] = []  # the rows the socket brought
    page.on(
        "websocket",
        lambda socket: socket.on(
            "framereceived", lambda frame: pushed.append(frame) if "extraction-row-" in str(frame) else None
        ),
    )
    page.goto(f"{studio}/extractions/")
    page.wait_for_selector("body.live")
    for record in (q4, fp32):
        page.check(f"input[name=extractions][value='{record.pk}']")
    # A change to both rows: the socket brings them as the server renders them (unticked), and
    # the user's ticks must stay.
    Extraction.objects.filter(pk__in=[fp32.pk, q4.pk]).update(updated_at=timezone.now())
    for _ in range(150):
        if len(pushed) >= 2:
            break
        page.wait_for_timeout(100)
    assert len(pushed) >= 2, pushed
    page.wait_for_timeout(500)  # swapped in
    assert page.is_checked(f"input[name=extractions][value='{fp32.pk}']")
    assert page.is_checked(f"input[name=extractions][value='{q4.pk}']")
    page.click("#compare-selected button")
    page.wait_for_url(f"{studio}/comparisons/*/")
    comparison = Comparison.objects.get()
    assert (comparison.base_id, comparison.other_ids) == (fp32.pk, [q4.pk])
    departure = page.wait_for_selector(f"#departure-{q4.pk}", timeout=30_000)
    assert "departs most at layer 0, Residual Stream" in departure.inner_text()
    assert f"Q4, extraction {q4.pk}" in page.inner_text("#chart-error-residual")
