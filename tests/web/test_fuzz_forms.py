"""Hypothesis posts arbitrary input to the forms that create records (download, dataset upload
and Hub dataset, extraction, template): never a server error, and never a partial record or
file: each post either creates one whole record or leaves everything as it was."""

from __future__ import annotations

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from models_app.models import Dataset, Extraction, LanguageModel
from templates_app.models import ExtractionTemplate
from tests.helpers import HTMX
from tests.web.owned import dataset_of, model_of

# Slow: Hypothesis posts a few hundred generated forms.
pytestmark = [pytest.mark.slow, pytest.mark.django_db]

FUZZ = hypothesis_settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Text as browsers and scripts send it: any characters but NUL... and NUL too, which the
# database would refuse if it got that far.
text = st.text(max_size=40)
number_text = st.one_of(st.integers(min_value=-(10**30), max_value=10**30).map(str), text)
optional = st.one_of(st.none(), text)


def mostly(valid, anything):
    """Seven draws in eight from `valid`: a post that passes every field is then common enough
    for the record-creating path to be fuzzed too, not only the refusals."""
    return st.integers(0, 7).flatmap(lambda i: valid if i else anything)


small_number = mostly(st.integers(min_value=-2, max_value=600).map(str), number_text)


def drop_none(data: dict) -> dict:
    return {key: value for key, value in data.items() if value is not None}


def folders(path) -> set[str]:
    return {p.name for p in path.iterdir()} if path.exists() else set()


@FUZZ
@given(
    data=st.fixed_dictionaries(
        {
            "repo_id": mostly(
                st.sampled_from(["tiny/llama", "tiny/gpt2", "tiny/missing", "gated/llama"]), text
            ),
            "revision": mostly(
                st.sampled_from([None, "main"]), st.one_of(text, st.sampled_from(["/abs", "a..b", "0" * 40]))
            ),
            "quantization": mostly(st.sampled_from(["fp16", "fp32", "q4", "q8"]), text),
            "token": mostly(
                st.none(), st.one_of(text, st.sampled_from(["hf_ok\nInjected: 1", "hf_\x00", "hf_good"]))
            ),
            "trust_remote_code": mostly(st.none(), st.sampled_from(["on", "", "1"])),
        }
    )
)
def test_the_download_form(owner_client, hub, data):
    before = LanguageModel.objects.count()
    response = owner_client.post(reverse("models_app:download"), drop_none(data), **HTMX)
    assert response.status_code < 500
    created = LanguageModel.objects.count() - before
    assert created in (0, 1)
    event(f"created {created}")
    if created:
        record = LanguageModel.objects.order_by("-pk").first()
        assert record.status == "queued" and record.commit_sha and record.bytes_total > 0


@FUZZ
@given(
    name=optional,
    text_field=optional,
    filename=st.one_of(
        text,
        st.sampled_from(["a.txt", "a.jsonl", "a.json", "a.csv", "a.parquet", "a.exe", ".txt", "../../a.txt"]),
    ),
    content=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        st.sampled_from(
            [
                b'[{"text": 1}, {"text": "x"}]',
                b'{"text": "\xff"}\n',
                b"a,b\n1,2\n",
                b'{"text": "one"}\n{"text": "two"}\n',
            ]
        ),
    ),
)
def test_the_dataset_upload_form(owner_client, settings, name, text_field, filename, content):
    from django.core.files.uploadedfile import SimpleUploadedFile

    before = set(Dataset.objects.values_list("pk", flat=True))
    post = drop_none({"name": name, "text_field": text_field})
    post["file"] = SimpleUploadedFile(filename or "unnamed", content)
    response = owner_client.post(reverse("models_app:dataset-upload"), post, **HTMX)
    assert response.status_code < 500
    new = set(Dataset.objects.values_list("pk", flat=True)) - before
    assert len(new) <= 1
    event(f"created {len(new)}")
    ready = set(Dataset.objects.filter(status="ready").values_list("pk", flat=True))
    assert ready == set(Dataset.objects.values_list("pk", flat=True))
    assert folders(settings.DATASETS_DIR) <= {str(pk) for pk in ready}


@FUZZ
@given(
    data=st.fixed_dictionaries(
        {
            "repo_id": mostly(st.sampled_from(["data/corpus", "data/missing", "data/gated-corpus"]), text),
            "revision": mostly(
                st.sampled_from([None, "main"]), st.one_of(text, st.sampled_from(["/abs", "..", "0" * 40]))
            ),
            "files": mostly(st.sampled_from(["data/*.parquet", "*.jsonl", "[", "../*"]), optional),
            "text_field": mostly(st.sampled_from(["text", "content", "missing"]), optional),
            "name": optional,
            "token": mostly(st.none(), text),
        }
    )
)
def test_the_hub_dataset_form(owner_client, hub, settings, data):
    before = Dataset.objects.count()
    response = owner_client.post(reverse("models_app:dataset-hub"), drop_none(data), **HTMX)
    assert response.status_code < 500
    assert Dataset.objects.count() - before in (0, 1)
    event(f"created {Dataset.objects.count() - before}")
    for record in Dataset.objects.all():  # the job ran: the record is whole, or says why not
        assert record.status in ("ready", "error", "queued"), record.status
        assert record.status != "error" or record.error_message


@FUZZ
@given(
    data=st.fixed_dictionaries(
        {
            "dataset": mostly(st.just("ready"), number_text),
            "layers": mostly(
                st.lists(st.sampled_from(["0", "1"]), min_size=1), st.lists(number_text, max_size=4)
            ),
            "hooks": mostly(
                st.lists(st.sampled_from(["residual", "mlp", "attention"]), min_size=1),
                st.lists(text, max_size=3),
            ),
            "batch_size": small_number,
            "max_samples": small_number,
            "context_length": small_number,
            "top_k": small_number,
            "dtype": mostly(st.sampled_from(["float16", "float32"]), text),
            "micro_batch_size": mostly(st.just(""), number_text),
            "context_prefix_tokens": small_number,
            "context_suffix_tokens": small_number,
        }
    )
)
def test_the_extraction_form(owner_client, owner, data):
    model = LanguageModel.objects.filter(name="fuzzed").first() or model_of(
        owner,
        name="fuzzed",
        architecture_config={
            "model_type": "llama",
            "num_hidden_layers": 2,
            "hidden_size": 64,
            "max_position_embeddings": 256,
        },
    )
    dataset = Dataset.objects.filter(name="fuzzed").first() or dataset_of(owner, name="fuzzed")
    if data["dataset"] == "ready":
        data["dataset"] = str(dataset.pk)
    before = Extraction.objects.count()
    response = owner_client.post(reverse("models_app:extract-start", args=[model.pk]), data, **HTMX)
    assert response.status_code < 500
    assert Extraction.objects.count() - before in (0, 1)
    event(f"created {Extraction.objects.count() - before}")


@FUZZ
@given(
    data=st.fixed_dictionaries(
        {
            "name": mostly(st.text(alphabet="abcdefgh é-_", min_size=1, max_size=20), text),
            "description": optional,
            "layer_indices": mostly(st.sampled_from(["0", "0-3, 7", "5-1"]), text),
            "hook_types": mostly(
                st.lists(st.sampled_from(["residual", "mlp"]), min_size=1), st.lists(text, max_size=3)
            ),
            "max_samples": small_number,
            "batch_size": small_number,
            "micro_batch_size": mostly(st.just(""), number_text),
            "context_length": small_number,
            "top_k_examples": small_number,
            "context_prefix_tokens": small_number,
            "context_suffix_tokens": small_number,
            "dtype": mostly(st.sampled_from(["float16", "float32"]), text),
            "extra_metadata": mostly(st.sampled_from(["", '{"note": 1}']), text),
        }
    )
)
def test_the_template_form(owner_client, data):
    before = ExtractionTemplate.objects.count()
    response = owner_client.post(reverse("templates_app:create"), drop_none(data), **HTMX)
    assert response.status_code < 500
    assert ExtractionTemplate.objects.count() - before in (0, 1)
    event(f"created {ExtractionTemplate.objects.count() - before}")
