"""The README and the guides in docs/ link to files and headings that exist, so a reader who follows
a link lands where it says (the anchors are the ones GitHub and most Markdown viewers make)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.workers import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```$", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.M)


def anchors(path: Path) -> set[str]:
    """The ids a viewer gives the file's headings: lower case, punctuation dropped, spaces to
    hyphens, and -1, -2 ... after a repeated one."""
    seen: dict[str, int] = {}
    ids = set()
    for title in HEADING.findall(FENCE.sub("", path.read_text())):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        ids.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return ids


def links(path: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", path.read_text()))


def test_it_has_a_guide_for_each_reader():
    names = {path.name for path in DOCUMENTS}
    assert {"using.md", "command-line.md", "api.md", "operating.md"} <= names
    readme = links(ROOT / "README.md")
    for guide in ("using.md", "command-line.md", "api.md", "operating.md"):
        assert f"docs/{guide}" in readme, f"README does not link to docs/{guide}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_it_links_only_to_files_and_headings_that_exist(document):
    for target in links(document):
        if re.match(r"[a-z]+:", target):
            continue  # another site: not checked here, no test reaches the internet
        file, _, anchor = target.partition("#")
        path = (document.parent / file).resolve() if file else document
        assert path.exists(), f"{document.name}: {target} names no file"
        if anchor:
            assert anchor in anchors(path), f"{document.name}: {target} names no heading of {path.name}"
