"""The Content-Security-Policy header: what every page may load, and the pages' markup keeps to
it (no inline script, handler, eval-needing htmx attribute or inline style). The browser test
(tests/browser/test_content_security_policy.py) proves the pages work under it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.workers import ROOT

pytestmark = pytest.mark.django_db

STUDIO_POLICY = {
    "default-src": {"'none'"},
    "script-src": {"'self'"},
    "style-src": {"'self'"},
    "img-src": {"'self'"},
    "font-src": {"'self'"},
    "connect-src": {"'self'"},
    "form-action": {"'self'"},
    "frame-ancestors": {"'none'"},
    "base-uri": {"'none'"},
    "object-src": {"'none'"},
}
TEMPLATE_DIRS = [ROOT / "templates", ROOT / "models_app" / "templates", ROOT / "templates_app" / "templates"]


def directives(response) -> dict[str, set[str]]:
    header = response.headers["Content-Security-Policy"]
    parts = [part.split() for part in header.split(";") if part.strip()]
    return {name: set(values) for name, *values in parts}


def test_it_sends_the_policy_on_a_signed_in_page(owner_client):
    assert directives(owner_client.get("/")) == STUDIO_POLICY


def test_it_sends_the_policy_on_the_login_page_and_the_admin(client, owner_client):
    assert directives(client.get("/login/")) == STUDIO_POLICY
    assert directives(owner_client.get("/admin/")) == STUDIO_POLICY


def test_it_allows_no_inline_script_eval_or_style_anywhere(owner_client):
    header = owner_client.get("/").headers["Content-Security-Policy"]
    assert "unsafe-inline" not in header and "unsafe-eval" not in header and "nonce-" not in header


def test_it_widens_the_policy_for_the_api_docs_only(owner_client):
    docs = directives(owner_client.get("/api/v1/docs"))
    assert docs["img-src"] == {"'self'", "data:"}  # Swagger UI's icons are data: URLs in its CSS
    assert {name: values for name, values in docs.items() if name != "img-src"} == {
        name: values for name, values in STUDIO_POLICY.items() if name != "img-src"
    }


def studio_templates() -> list[Path]:
    return sorted(path for folder in TEMPLATE_DIRS for path in folder.rglob("*.html"))


@pytest.mark.parametrize("path", studio_templates(), ids=lambda path: str(path.relative_to(ROOT)))
def test_it_finds_no_inline_script_handler_or_style_in_the_templates(path):
    text = path.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "inline <script>: use a file in static/js"
    assert not re.search(r"\son[a-z]+\s*=", text), "inline event handler: listen in static/js"
    assert not re.search(r"\shx-on", text), "hx-on needs eval: listen in static/js"
    triggers = [
        re.sub(r"\b(from|target):\S+", "", trigger) for trigger in re.findall(r'hx-trigger="([^"]*)"', text)
    ]
    assert not any("[" in trigger for trigger in triggers), "a trigger filter ([...]) needs eval"
    assert not re.search(r"\sstyle\s*=|<style", text), "inline style: use a class in static/css"
