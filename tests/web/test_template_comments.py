"""Django's {# #} comments end at the line's end: one spread over lines is printed as text (and,
in <head>, pushes the tags after it into <body>). Every template's comments stay on one line, and
a page shows none."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]


def test_no_template_spreads_a_comment_over_lines():
    templates = [p for p in ROOT.glob("**/templates/**/*.html") if ".venv" not in p.parts]
    assert templates
    spread = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in templates
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if "{#" in line and "#}" not in line[line.index("{#") :]
    ]
    assert spread == []


@pytest.mark.django_db
def test_a_page_prints_no_comment(client):
    html = client.get(reverse("login")).content.decode()
    assert "{#" not in html and "#}" not in html
    head = html[: html.index("</head>")]
    assert re.search(r"<title>.*</title>", head) and "studio.css" in head
