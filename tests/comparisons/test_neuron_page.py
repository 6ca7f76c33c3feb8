"""The neuron page: density above a threshold the user changes, the neuron's histogram, examples
from every band of its range (decoded), its most correlated neurons, and the same neuron in the
model's other formats, reached from the top examples and from a comparison's drifting neurons.
The figures are ml/neuron.py's, tested against numpy in tests/ml/test_neuron.py."""

from __future__ import annotations

import pytest
from django.urls import reverse

from models_app.ml import neuron as neuron_profile
from models_app.ml import unembedding
from models_app.models import Comparison
from models_app.templatetags.studio import share
from tests.helpers import HTMX

pytestmark = pytest.mark.django_db(transaction=True)

KEY, NEURON = "layer_1_mlp", 5


@pytest.fixture
def records(formats, model_sources):
    """The formats, their model folders holding a real tokenizer (examples are decoded)."""
    made = formats()
    for record in made.values():
        record.model.file_path = str(model_sources["llama"])
        record.model.save(update_fields=["file_path"])
    return made


def url(record, key=KEY, neuron=NEURON) -> str:
    return reverse("models_app:extraction-neuron", args=[record.pk, key, neuron])


def test_the_page_shows_the_neurons_figures(owner_client, records):
    base = records["fp32"]
    html = owner_client.get(url(base)).content.decode()
    figures = neuron_profile.profile(base.output_dir, KEY, NEURON)
    summary = html[html.index('id="neuron-summary"') :]
    assert f"of {figures['tokens']} real tokens above 0.0" in summary
    assert f"<b>{share(figures['density'])}</b>" in summary
    assert 'id="neuron-histogram"' in html and html.count('class="bin"') == neuron_profile.NEURON_BINS
    bands = html[html.index('id="neuron-bands"') : html.index('id="correlated"')]
    assert bands.count('<li id="band-') == neuron_profile.BANDS
    assert bands.count('class="example-text small"') == sum(
        min(neuron_profile.PER_BAND, b["count"]) for b in figures["bands"]
    )
    assert 'class="tok peak' in bands  # decoded, the example's own token marked
    correlated = html[html.index('id="correlated"') : html.index('id="other-formats"')]
    for c in figures["correlated"]:
        assert url(base, neuron=c["neuron"]) in correlated


def test_a_new_threshold_changes_the_density_in_place(owner_client, records):
    base = records["fp32"]
    figures = neuron_profile.profile(base.output_dir, KEY, NEURON, threshold=0.05)
    response = owner_client.get(url(base), {"threshold": "0.05"}, HTTP_HX_TARGET="neuron-figures", **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="neuron-figures"')
    assert f"<b>{share(figures['density'])}</b> of {figures['tokens']} real tokens above 0.05" in html


def test_the_same_neuron_in_the_other_formats(owner_client, records):
    base, q8, q4 = records["fp32"], records["q8"], records["q4"]
    html = owner_client.get(url(base), {"threshold": "0.02"}).content.decode()
    others = html[html.index('id="other-formats"') :]
    assert url(q8) + "?threshold=0.02" in others and url(q4) + "?threshold=0.02" in others
    for record in (q8, q4):  # side by side: each format's own figures, read from its arrays
        row = others[others.index(f'id="beside-{record.pk}"') :]
        row = row[: row.index("</tr>")]
        figures = neuron_profile.profile(record.output_dir, KEY, NEURON, threshold=0.02)
        assert f">{share(figures['density'])}<" in row and f"{figures['max']:.4f}" in row
    examples = owner_client.get(
        reverse("models_app:extraction-examples", args=[base.pk]), {"target": KEY, "neuron": NEURON}
    ).content.decode()
    assert f'id="neuron-page" href="{url(base)}"' in examples


def test_a_comparisons_drifting_neurons_open_in_both_formats(owner_client, records):
    base, q4 = records["fp32"], records["q4"]
    owner_client.post(reverse("models_app:comparison-start", args=[base.pk]), {"others": [q4.pk]}, **HTMX)
    comparison = Comparison.objects.get()
    hooks = comparison.result["others"][0]["hooks"]
    html = owner_client.get(reverse("models_app:comparison", args=[comparison.pk])).content.decode()
    for h in hooks:
        key = f"layer_{h['layer']}_{h['hook']}"
        for drifting in h["drifting_neurons"][:5]:
            assert url(base, key, drifting["neuron"]) in html and url(q4, key, drifting["neuron"]) in html


def test_what_cannot_be_shown_says_why(owner_client, records):
    base = records["fp32"]
    assert owner_client.get(url(base, key="layer_9_mlp")).status_code == 404
    html = owner_client.get(url(base, neuron=100_000)).content.decode()
    assert "layer_1_mlp has neurons 0 to 127." in html


def test_the_page_names_the_tokens_the_dimension_pushes_up_and_down(owner_client, records, model_sources):
    html = owner_client.get(url(records["q4"])).content.decode()
    found = unembedding.effects(model_sources["llama"], NEURON, decode=str)
    top = html[html.index('id="logits-top"') : html.index('id="logits-bottom"')]
    bottom = html[html.index('id="logits-bottom"') :]
    bottom = bottom[: bottom.index("</table>")]
    assert [f'title="id {t["token"]}"' in top for t in found["top"]] == [True] * 10
    assert [f'title="id {t["token"]}"' in bottom for t in found["bottom"]] == [True] * 10
    assert "The final norm before the unembedding is ignored" in html


def test_without_weights_the_page_says_so(owner_client, formats):
    record = formats()["fp32"]  # a record whose model has no folder
    html = owner_client.get(url(record)).content.decode()
    assert 'id="logits-unavailable"' in html and "has no tokenizer.json" in html
    assert 'id="examples-unavailable"' in html and 'id="neuron-histogram"' in html  # the figures stand
