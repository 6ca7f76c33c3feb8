"""Numbers that people type, or that name folders, and that str.isdigit() accepts but int() or
the database cannot take ("²", thousands of digits): answered with a message, never a 500."""

from __future__ import annotations

import pytest
from django.urls import reverse

from models_app.models import LanguageModel
from templates_app.models import ExtractionTemplate
from tests.helpers import HTMX

pytestmark = pytest.mark.django_db
LONG = "9" * 5000  # int() refuses more than 4,300 digits


@pytest.fixture
def model():
    return LanguageModel.objects.create(
        name="tiny", repo_id="tiny/llama", status="ready", architecture_config={"num_hidden_layers": 2}
    )


def save_as_template(client, model, **fields):
    data = {
        "layers": ["0"],
        "hooks": ["mlp"],
        "batch_size": "4",
        "context_length": "32",
        "top_k": "5",
        "dtype": "float16",
        "max_samples": "10",
        **fields,
    }
    response = client.post(reverse("templates_app:save-from-extraction", args=[model.pk]), data, **HTMX)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"max_samples": "²"}, "max_samples", "Max samples: Enter a whole number."),
        ({"max_samples": LONG}, "max_samples", "Max samples: Enter a whole number."),
        ({"max_samples": "9" * 4000}, "max_samples", "Max samples: Must be between 1 and 2147483647."),
        ({"layers": ["0", "²"]}, "layer_indices", "Layers: “²” is not a layer index"),
        ({"layers": [LONG]}, "layer_indices", "layer indices go up to 1023"),
    ],
)
def test_it_says_which_number_it_cannot_read_when_suggesting_a_name(
    owner_client, model, fields, field, message
):
    html = save_as_template(owner_client, model, **fields)
    assert f'id="template-error-{field}"' in html and message in html
    assert LONG not in html  # the message quotes the start of a value, not all of it


@pytest.mark.parametrize("fields", [{"max_samples": "²"}, {"max_samples": LONG}, {"layers": [LONG]}])
def test_it_saves_nothing_from_a_number_it_cannot_read(owner_client, model, fields):
    html = save_as_template(owner_client, model, template_name="probe", **fields)
    assert 'id="template-error-' in html and not ExtractionTemplate.objects.exists()


def test_it_still_suggests_a_name_from_readable_numbers(owner_client, model):
    html = save_as_template(owner_client, model, layers=["1", "0"], max_samples="0012")
    assert 'name="template_name" value="mlp_layers0-1_12samples_' in html
    assert 'value="mlp_layers0-0_allsamples_' in save_as_template(owner_client, model, max_samples="")


@pytest.mark.parametrize("ids", [["²"], [LONG], ["9" * 30], ["-1"]])
def test_export_ignores_ids_that_are_no_id(owner_client, ids):
    template = ExtractionTemplate.objects.create(name="a", layer_indices=[0], hook_types=["mlp"])
    response = owner_client.get(
        reverse("templates_app:export"), {"scope": "selected", "ids": [*ids, str(template.pk)]}
    )
    assert response.status_code == 200 and b'"name": "a"' in response.content
    alone = owner_client.get(reverse("templates_app:export"), {"scope": "selected", "ids": ids}, follow=True)
    assert "Tick the templates to export first" in alone.content.decode()


def test_folders_named_like_numbers_that_are_not_ids_are_skipped(owner_client, settings):
    for name in ("²", "9" * 30, "0" * 200 + "7"):
        (settings.ACTIVATIONS_DIR / name).mkdir(parents=True)
    response = owner_client.get(reverse("models_app:extractions"))
    assert response.status_code == 200
