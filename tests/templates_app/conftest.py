"""Fixtures for the Templates tab: a factory for templates."""

from __future__ import annotations

import pytest

from templates_app.models import ExtractionTemplate


@pytest.fixture
def make_template(db):
    def make(name: str = "baseline", **fields) -> ExtractionTemplate:
        values = {"layer_indices": [0, 1], "hook_types": ["residual"], **fields}
        return ExtractionTemplate.objects.create(name=name, **values)

    return make
