"""docs/ARCHITECTURE.md names real files and functions: a rename that leaves it behind fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
SOURCES = ("mistudio_site", "models_app", "templates_app")


def named() -> list[str]:
    return re.findall(r"`([^`]+)`", DOC.read_text())


def defined_names() -> set[str]:
    names: set[str] = set()
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            names.update(re.findall(r"^\s*(?:async def|def|class)\s+(\w+)", path.read_text(), re.M))
    return names


def test_every_file_it_names_exists():
    paths = [n for n in named() if "/" in n and re.search(r"\.(py|js|html|md)$", n)]
    assert len(paths) > 20
    assert [p for p in paths if not (ROOT / p).exists()] == []


def test_every_function_and_class_it_names_is_defined():
    defined = defined_names()
    calls = {n.rsplit(".", 1)[-1][:-2] for n in named() if re.fullmatch(r"[\w.]+\(\)", n)}
    classes = {n for n in named() if re.fullmatch(r"[A-Z]\w+", n)}
    assert len(calls) > 20 and len(classes) > 10
    assert sorted((calls | classes) - defined) == []
