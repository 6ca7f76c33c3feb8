from __future__ import annotations

import pytest
from django.http import QueryDict

from templates_app.forms import TemplateForm, parse_layers
from templates_app.models import ExtractionTemplate

pytestmark = pytest.mark.django_db

VALID = {
    "name": "sweep",
    "layer_indices": "0, 2, 5-7",
    "hook_types": ["residual"],
    "batch_size": "8",
    "context_length": "128",
    "top_k_examples": "10",
    "context_prefix_tokens": "25",
    "context_suffix_tokens": "25",
    "dtype": "float16",
    "extra_metadata": "{}",
}


def post(**changes) -> QueryDict:
    data = QueryDict(mutable=True)
    for key, value in {**VALID, **changes}.items():
        data.setlist(key, value if isinstance(value, list) else [value])
    return data


def test_it_parses_ranges_dedupes_and_sorts_layers():
    assert parse_layers("7, 5-7, 0,2 2") == [0, 2, 5, 6, 7]
    assert parse_layers("3 - 5") == [3, 4, 5]
    assert parse_layers([4, 1, 1, "2-3"]) == [1, 2, 3, 4]


def test_it_renders_layers_back_as_text_with_ranges(make_template):
    template = make_template(layer_indices=[0, 2, 5, 6, 7, 9, 10])
    html = str(TemplateForm(instance=template)["layer_indices"])
    assert 'value="0, 2, 5-7, 9, 10"' in html


def test_it_names_every_bad_layer_piece():
    form = TemplateForm(post(layer_indices="0, x, -1, 7-5, 3-5000, 1.5"))
    errors = form.errors["layer_indices"]
    assert "“x” is not a layer index: use whole numbers like 3 or ranges like 5-7." in errors
    assert "“-1”: layer indices cannot be negative." in errors
    assert "“7-5”: write a range from low to high, like 5-7." in errors
    assert "“3-5000”: layer indices go up to 1023." in errors
    assert "“1.5” is not a layer index: use whole numbers like 3 or ranges like 5-7." in errors
    assert len(errors) == 5


def test_it_requires_a_layer_and_a_hook_type():
    form = TemplateForm(post(layer_indices="  ", hook_types=[]))
    assert form.errors["layer_indices"] == ["Choose at least one layer, e.g. 0, 2, 5-7."]
    assert form.errors["hook_types"] == ["Choose at least one hook type."]
    form = TemplateForm(post(hook_types=["residual", "logits"]))
    assert form.errors["hook_types"] == ["“logits” is not a hook type: choose residual, mlp or attention."]


def test_it_strips_the_name_and_refuses_blank_or_taken_names(make_template):
    make_template("Baseline")
    assert TemplateForm(post(name="   ")).errors["name"] == ["Give the template a name."]
    assert TemplateForm(post(name=" baseline ")).errors["name"] == [
        "A template named “Baseline” already exists; choose another name."
    ]
    form = TemplateForm(post(name="  fresh  "))
    assert form.is_valid() and form.save().name == "fresh"


def test_it_lets_a_template_keep_its_own_name(make_template):
    template = make_template("Baseline")
    form = TemplateForm(post(name="BASELINE"), instance=template)
    assert form.is_valid(), form.errors
    assert form.save().name == "BASELINE"


def test_it_skips_the_name_check_when_asked():
    ExtractionTemplate.objects.create(name="dup")
    assert TemplateForm(post(name="DUP"), check_unique=False).is_valid()


@pytest.mark.parametrize(
    "text, message",
    [
        ("[1, 2]", 'Must be a JSON object such as {"note": "baseline"}, not a list.'),
        ('"note"', 'Must be a JSON object such as {"note": "baseline"}, not a string.'),
        ("{bad", 'Not valid JSON: write an object such as {"note": "baseline"}.'),
    ],
)
def test_it_requires_metadata_to_be_a_json_object(text, message):
    assert TemplateForm(post(extra_metadata=text)).errors["extra_metadata"] == [message]


def test_it_reads_empty_metadata_as_an_empty_object():
    form = TemplateForm(post(extra_metadata=""))
    assert form.is_valid() and form.cleaned_data["extra_metadata"] == {}


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("batch_size", "0", "Must be between 1 and 512."),
        ("batch_size", "513", "Must be between 1 and 512."),
        ("batch_size", "eight", "Enter a whole number."),
        ("top_k_examples", "1001", "Must be between 1 and 1000."),
        ("context_prefix_tokens", "-1", "Must be between 0 and 500."),
        ("context_length", "0", "Must be between 1 and 1000000."),
        ("max_samples", "0", "Must be between 1 and 2147483647."),
        ("dtype", "bfloat16", "Choose float16 or float32."),
    ],
)
def test_it_explains_each_bad_number_at_its_field(field, value, message):
    assert TemplateForm(post(**{field: value})).errors[field] == [message]


def test_it_keeps_the_micro_batch_within_the_batch():
    assert TemplateForm(post(batch_size="8", micro_batch_size="16")).errors["micro_batch_size"] == [
        "Must not exceed the batch size (8)."
    ]
    assert TemplateForm(post(batch_size="8", micro_batch_size="4")).is_valid()


def test_it_takes_plain_dict_data_with_lists_and_fills_defaults():
    form = TemplateForm(
        data={
            "name": "from modal",
            "layer_indices": [5, 1, 1],
            "hook_types": ["mlp", "residual"],
            "max_samples": None,
            "extra_metadata": {"source": "modal"},
        }
    )
    assert form.is_valid(), form.errors
    template = form.save()
    assert template.layer_indices == [1, 5] and template.hook_types == ["residual", "mlp"]
    assert (template.batch_size, template.context_length, template.top_k_examples, template.dtype) == (
        8,
        128,
        10,
        "float16",
    )
    assert template.extra_metadata == {"source": "modal"} and template.max_samples is None
    assert str(TemplateForm(data={"name": "x", "extra_metadata": {"a": 1}})["extra_metadata"])  # renders


def test_it_takes_the_extraction_records_field_names():
    form = TemplateForm(data={"name": "x", "layers": [2], "hooks": ["attention"], "top_k": 7})
    assert form.is_valid(), form.errors
    assert (
        form.cleaned_data["layer_indices"],
        form.cleaned_data["hook_types"],
        form.cleaned_data["top_k_examples"],
    ) == ([2], ["attention"], 7)


def test_it_reads_one_box_per_layer_from_a_post():
    data = post()
    data.setlist("layer_indices", ["3", "1"])
    form = TemplateForm(data)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["layer_indices"] == [1, 3]


def test_a_partial_dict_keeps_the_rest_of_an_edited_template(make_template):
    template = make_template("keep", batch_size=64, context_length=256, is_favorite=True)
    form = TemplateForm(data={"batch_size": 16}, instance=template)
    assert form.is_valid(), form.errors
    template = form.save()
    assert (template.name, template.batch_size, template.context_length, template.is_favorite) == (
        "keep",
        16,
        256,
        True,
    )


def test_an_unticked_favorite_box_in_a_post_means_not_favorite(make_template):
    template = make_template("star", is_favorite=True)
    form = TemplateForm(post(name="star"), instance=template)  # an HTML form omits unticked boxes
    assert form.is_valid(), form.errors
    assert form.save().is_favorite is False


def test_a_new_form_shows_the_model_defaults():
    form = TemplateForm()
    html = str(form)
    for field, value in (
        ("batch_size", "8"),
        ("context_length", "128"),
        ("top_k_examples", "10"),
        ("context_prefix_tokens", "25"),
        ("context_suffix_tokens", "25"),
    ):
        assert f'name="{field}" value="{value}"' in html, field
    assert "\n{}</textarea>" in html and 'value="float16" selected' in html
