from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from templates_app import services
from templates_app.models import ExtractionTemplate

pytestmark = pytest.mark.django_db


def test_it_suggests_a_name_from_the_settings():
    now = datetime(2025, 6, 1, 14, 32)
    assert (
        services.suggest_name(["residual", "mlp"], [3, 0, 5], 1000, now)
        == "residual-mlp_layers0-5_1000samples_1432"
    )
    assert services.suggest_name(["attention"], [7], None, now) == "attention_layers7-7_allsamples_1432"
    assert (
        services.suggest_name(["mlp", "mlp"], [2, 9], 5, datetime(2025, 1, 1, 9, 5))
        == "mlp_layers2-9_5samples_0905"
    )


def test_it_names_copies_copy_of_then_numbers_them(make_template):
    original = make_template(
        "Sweep", layer_indices=[1, 2], batch_size=16, extra_metadata={"a": 1}, is_favorite=True
    )
    first, second = services.duplicate(original), services.duplicate(original)
    assert (first.name, second.name) == ("Copy of Sweep", "Copy of Sweep (2)")
    assert first.pk != original.pk and ExtractionTemplate.objects.count() == 3
    assert (first.layer_indices, first.batch_size, first.extra_metadata, first.is_favorite) == (
        [1, 2],
        16,
        {"a": 1},
        False,
    )


def test_it_finds_a_free_name_ignoring_case_and_names_already_taken(make_template):
    make_template("probe")
    make_template("PROBE (2)")
    assert services.available_name("Probe") == "Probe (3)"
    assert services.first_free_name("Probe", {"probe", "probe (2)", "probe (3)"}) == "Probe (4)"
    assert services.available_name("new") == "new"
    make_template("x" * 255)
    long = services.available_name("x" * 255)  # the number still fits the 255 characters
    assert len(long) == 255 and long == "x" * 251 + " (2)"


def test_toggling_a_favorite_leaves_updated_at_alone(make_template):
    template = make_template()
    stamp = template.updated_at - timedelta(days=3)
    ExtractionTemplate.objects.filter(pk=template.pk).update(updated_at=stamp)
    template.refresh_from_db()
    assert services.toggle_favorite(template).is_favorite is True
    template.refresh_from_db()
    assert template.is_favorite is True and template.updated_at == stamp
    assert services.toggle_favorite(template).is_favorite is False
    assert ExtractionTemplate.objects.get().is_favorite is False


def test_it_numbers_a_taken_numbered_name_from_its_base(make_template):
    make_template("my probe")
    make_template("my probe (2)")
    assert services.available_name("my probe (2)") == "my probe (3)"  # not "my probe (2) (2)"
    assert (
        services.first_free_name("My Probe (2)", {"my probe", "my probe (2)", "my probe (3)"})
        == "My Probe (4)"
    )
    assert services.available_name("my probe (7)") == "my probe (7)"  # free: kept as it is
    original = make_template("Sweep (2)")
    make_template("Copy of Sweep (2)")
    assert services.duplicate(original).name == "Copy of Sweep (3)"
    make_template("y" * 251 + " (9)")
    assert services.available_name("y" * 251 + " (9)") == "y" * 250 + " (10)"  # still 255 characters
