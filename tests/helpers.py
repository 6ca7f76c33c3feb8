"""Helpers that test modules import (fixtures live in the conftest files; nothing is imported
from a conftest)."""

from __future__ import annotations

import time

# The header htmx sends with every request it makes: views answer with a fragment.
HTMX = {"HTTP_HX_REQUEST": "true"}


def run_async(scenario):
    """Run `scenario()` (async) from a sync test, on a fresh thread: Playwright keeps an event
    loop in the main thread, and a fresh thread opens its own database connections from the
    settings in force now (a pooled thread could still hold another test's database)."""
    from concurrent.futures import ThreadPoolExecutor

    from asgiref.sync import async_to_sync
    from django.db import connections

    def in_thread():
        try:
            return async_to_sync(scenario)()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(in_thread).result()


def wait_for(read, until, timeout: float = 60.0, every: float = 0.1):
    """`read()` again and again until `until(value)` holds; that value (or AssertionError)."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = read()
        if until(value):
            return value
        time.sleep(every)
    raise AssertionError(f"timed out; last seen: {value!r}")


# Short texts of different lengths (one longer than a 16-token context) for engine-level tests.
SAMPLE_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Attention heads move information.",
    "Residual streams carry information between transformer blocks, layer after layer, token by token.",
    "Sparse",
    "Mechanistic interpretability studies the internal computations of neural networks.",
    "Features are directions.",
    "A much longer sample that will certainly be truncated to the context length because it keeps "
    "going and going.",
]
