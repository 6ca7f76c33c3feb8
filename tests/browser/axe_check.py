"""axe-core (bundled by axe-playwright-python) run on a page as it is, and the studio's bar for
what it finds."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe

# Nothing axe rates critical or serious, and besides those an <h1> on every page and no id twice
# on a page: rules axe rates lower or keeps off (browsers cope), but a label's `for` then names
# the wrong field, and tests that find fields by id find the wrong one.
BLOCKING_IMPACTS = ("critical", "serious")
ALSO_BLOCKING = ("page-has-heading-one", "duplicate-id", "duplicate-id-active")
OPTIONS = {
    "resultTypes": ["violations"],
    "rules": {"duplicate-id": {"enabled": True}, "duplicate-id-active": {"enabled": True}},
}

# Every id the document holds more than once (axe's own rules skip some elements).
REPEATED_IDS = """() => {
  const seen = {};
  document.querySelectorAll("[id]").forEach((el) => { seen[el.id] = (seen[el.id] || 0) + 1; });
  return Object.keys(seen).filter((id) => seen[id] > 1);
}"""


def problems(page) -> list[str]:
    """One line for each element on `page` that fails a rule the studio holds to.

    Axe is evaluated through the browser's devtools protocol (page.evaluate), which the page's
    Content-Security-Policy does not govern; a <script> tag carrying it inline would be refused."""
    found = Axe().run(page, options=OPTIONS).response["violations"]
    lines = [
        f"{v['id']} ({v['impact']}) at {' '.join(map(str, node['target']))}: {node['html'][:120]}"
        for v in found
        if v["impact"] in BLOCKING_IMPACTS or v["id"] in ALSO_BLOCKING
        for node in v["nodes"]
    ]
    return lines + [f"id {name!r} is used more than once" for name in page.evaluate(REPEATED_IDS)]
