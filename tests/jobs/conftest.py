"""Real Django-Q2 workers for the job tests that kill or watch them."""

from __future__ import annotations

import pytest

from tests.workers import cancel_running_jobs, start_clusters, stop


@pytest.fixture
def clusters(hub, settings, monkeypatch):
    """The downloads and gpu clusters, as run_studio starts them, on the test database."""
    processes = start_clusters(settings, hub.endpoint, monkeypatch)
    yield processes
    hub.clear_faults()
    cancel_running_jobs()
    stop(*processes)
