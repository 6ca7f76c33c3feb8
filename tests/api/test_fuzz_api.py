"""Hypothesis sends arbitrary JSON to the API's endpoints that create records: never a server
error; a 2xx answer made exactly one whole record, any other made none. (Schemathesis, in
test_schemathesis.py, covers every operation for server errors and the document.)"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from models_app.models import Dataset, Extraction, LanguageModel
from templates_app.models import ExtractionTemplate
from tests.web.owned import dataset_of, model_of

# Slow: Hypothesis sends a few hundred generated bodies.
pytestmark = [pytest.mark.slow, pytest.mark.django_db]

FUZZ = hypothesis_settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def mostly(valid, anything=json_values):
    """Seven draws in eight from `valid`, so bodies that pass every field are fuzzed too."""
    return st.integers(0, 7).flatmap(lambda i: valid if i else anything)


def body(required: dict, optional: dict | None = None) -> st.SearchStrategy:
    """Mostly a JSON object with the `required` keys and some `optional` ones (values from their
    strategies, themselves mostly plausible); now and then any JSON at all."""
    return mostly(st.fixed_dictionaries(required, optional=optional or {}), json_values)


def send(api, path: str, payload) -> int:
    response = api.client.post(
        f"/api/v1{path}", json.dumps(payload), content_type="application/json", **api.headers
    )
    assert response.status_code < 500, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    return response.status_code


def created_one_or_none(kind, before: int, status: int) -> None:
    created = kind.objects.count() - before
    event(f"{status} created {created}")
    assert created == (1 if 200 <= status < 300 else 0)


@pytest.mark.slow
@FUZZ
@given(
    payload=body(
        {"repo_id": mostly(st.sampled_from(["tiny/llama", "tiny/gpt2", "tiny/missing"]))},
        {
            "revision": mostly(st.sampled_from(["main", "/abs", "0" * 40])),
            "quantization": mostly(st.sampled_from(["fp16", "q4", "q3"])),
            "token": mostly(st.sampled_from([None, "hf_x\ny"])),
            "trust_remote_code": mostly(st.booleans()),
        },
    )
)
def test_starting_a_download(api, hub, payload):
    before = LanguageModel.objects.count()
    created_one_or_none(LanguageModel, before, send(api, "/models", payload))


@FUZZ
@given(
    payload=body(
        {"repo_id": mostly(st.sampled_from(["data/corpus", "data/missing"]))},
        {
            "revision": mostly(st.sampled_from(["main", ".."])),
            "files": mostly(st.sampled_from(["data/*.parquet", "*.jsonl", "["])),
            "text_field": mostly(st.sampled_from(["text", "content"])),
            "name": json_values,
            "token": mostly(st.none()),
        },
    )
)
def test_adding_a_hub_dataset(api, hub, payload):
    before = Dataset.objects.count()
    created_one_or_none(Dataset, before, send(api, "/datasets/hub", payload))


@FUZZ
@given(
    payload=body(
        {
            "model": mostly(st.just("ready")),
            "dataset": mostly(st.just("ready")),
            "layers": mostly(st.lists(st.integers(0, 2), min_size=1, max_size=3)),
            "hooks": mostly(st.lists(st.sampled_from(["residual", "mlp", "attention"]), min_size=1)),
        },
        {
            "batch_size": mostly(st.integers(-1, 600)),
            "max_samples": mostly(st.integers(-1, 2**40)),
            "context_length": mostly(st.integers(0, 5000)),
            "top_k": mostly(st.integers(0, 2000)),
            "dtype": mostly(st.sampled_from(["float16", "float32"])),
            "micro_batch_size": mostly(st.none()),
            "context_prefix_tokens": mostly(st.integers(-1, 600)),
        },
    )
)
def test_starting_an_extraction(api, alice, payload):
    model = LanguageModel.objects.filter(name="fuzzed").first() or model_of(
        alice,
        name="fuzzed",
        architecture_config={
            "model_type": "llama",
            "num_hidden_layers": 2,
            "hidden_size": 64,
            "max_position_embeddings": 1024,
        },
    )
    dataset = Dataset.objects.filter(name="fuzzed").first() or dataset_of(alice, name="fuzzed")
    if isinstance(payload, dict):
        payload = {
            k: {"model": model.pk, "dataset": dataset.pk}[k] if v == "ready" else v
            for k, v in payload.items()
        }
    before = Extraction.objects.count()
    created_one_or_none(Extraction, before, send(api, "/extractions", payload))


@FUZZ
@given(
    payload=body(
        {"name": mostly(st.text(alphabet="abcdefgh é-_", min_size=1, max_size=20))},
        {
            "layer_indices": mostly(st.one_of(st.lists(st.integers(0, 40), min_size=1), st.just("0-3, 7"))),
            "hook_types": mostly(st.lists(st.sampled_from(["residual", "mlp"]), min_size=1)),
            "batch_size": mostly(st.integers(-1, 600)),
            "max_samples": mostly(st.integers(-1, 2**40)),
            "extra_metadata": mostly(st.dictionaries(st.text(max_size=5), scalars, max_size=2)),
        },
    )
)
def test_creating_a_template(api, payload):
    before = ExtractionTemplate.objects.count()
    created_one_or_none(ExtractionTemplate, before, send(api, "/templates", payload))


@FUZZ
@given(
    payload=mostly(
        st.fixed_dictionaries(
            {
                "version": mostly(st.just("1.0")),
                "templates": mostly(
                    st.lists(
                        st.fixed_dictionaries(
                            {
                                "name": mostly(st.text(alphabet="abcxyz", min_size=1, max_size=8)),
                                "layer_indices": mostly(st.lists(st.integers(0, 9), min_size=1)),
                                "hook_types": mostly(st.just(["mlp"])),
                            }
                        ),
                        max_size=3,
                    )
                ),
            }
        )
    )
)
def test_importing_templates(api, payload):
    before = ExtractionTemplate.objects.count()
    status = send(api, "/templates/import", payload)
    if status != 200:
        assert ExtractionTemplate.objects.count() == before  # all or nothing
    event(f"{status}")
