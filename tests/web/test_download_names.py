"""The names an extraction's files are saved under: the Download links, the API's file URLs and
the page's numpy snippet must agree, so the snippet opens what was downloaded."""

from __future__ import annotations

import html
import re

import pytest
from django.test import Client
from django.urls import reverse

from models_app.models import ApiToken

# Slow: every test first downloads a model and adds a dataset by their real jobs (`ready`) and extracts.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def saved_name(response) -> str:
    match = re.search(r'filename="?([^";]+)"?', response["Content-Disposition"])
    assert response.status_code == 200 and match, response
    return match[1]


def snippet_names(page: str) -> list[str]:
    snippet = page[page.index('id="numpy-snippet"') :]
    snippet = html.unescape(snippet[: snippet.index("</pre>")])
    return re.findall(r'\{folder\}/([\w.]+)"', snippet)


def test_it_saves_downloads_under_the_names_the_snippet_opens(owner_client, owner, extract):
    record = extract(layers=[1], hooks=["mlp"])
    page = owner_client.get(reverse("models_app:extraction", args=[record.pk])).content.decode()
    opened = snippet_names(page)
    assert "layer_1_mlp.npy" in opened and "topk_layer_1_mlp.npz" in opened
    assert set(opened) <= set(record.file_names()), "the snippet opens only files the extraction wrote"
    links = re.findall(rf'href="(/extractions/{record.pk}/files/[^"]+)"', page)
    _token_record, token = ApiToken.issue(owner, "names")
    script = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    files = {f["name"]: f["url"] for f in script.get(f"/api/v1/extractions/{record.pk}").json()["files"]}
    for name in record.file_names():
        assert (
            saved_name(owner_client.get(reverse("models_app:extraction-file", args=[record.pk, name])))
            == name
        )
        assert reverse("models_app:extraction-file", args=[record.pk, name]) in links
        assert saved_name(script.get(files[name])) == name
