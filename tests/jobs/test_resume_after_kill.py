"""A real qcluster killed with SIGKILL in the middle of an extraction, once or twice: the job is
failed as lost, its folder keeps what its last checkpoint counts, and Retry (the page's button)
continues from there to the very files an uninterrupted run of the same settings writes."""

from __future__ import annotations

import pytest
from django.urls import reverse

from models_app.ml import checkpoint
from models_app.models import LOST_WORKER_MESSAGE, Dataset, Extraction, LanguageModel
from tests.extraction_files import assert_same_extraction_files
from tests.helpers import HTMX, wait_for
from tests.workers import kill_the_job

# Slow: real qclusters killed mid-job, three extractions each.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SAMPLES = 1500  # long enough that a checkpoint (one a second here) falls in each third
SETTINGS = {
    "layers": [0, 1],
    "hooks": ["residual", "mlp"],
    "batch_size": 2,
    "context_length": 64,
    "top_k": 5,
    "dtype": "float32",
}


@pytest.fixture
def model_and_dataset(owner_client, hub, clusters, tmp_path) -> tuple[LanguageModel, Dataset]:
    owner_client.post(
        reverse("models_app:download"), {"repo_id": "tiny/llama", "quantization": "fp32"}, **HTMX
    )
    model = wait_for(
        lambda: LanguageModel.objects.get(), lambda r: r.status in ("ready", "error"), timeout=90
    )
    assert model.status == "ready", model.error_message
    corpus = tmp_path / "varied.txt"  # lengths from 2 to 60 words: batches of mixed lengths
    corpus.write_text("\n".join(f"line {i} " + "word " * (i * 7 % 59) for i in range(SAMPLES)))
    with corpus.open("rb") as handle:
        owner_client.post(
            reverse("models_app:dataset-upload"),
            {"name": "varied", "text_field": "text", "file": handle},
            **HTMX,
        )
    return model, wait_for(lambda: Dataset.objects.filter(status="ready").first(), bool, timeout=60)


def start(owner_client, model: LanguageModel, dataset: Dataset) -> int:
    before = set(Extraction.objects.values_list("pk", flat=True))
    owner_client.post(
        reverse("models_app:extract-start", args=[model.pk]),
        {"dataset": dataset.pk, **SETTINGS},
        **HTMX,
    )
    [pk] = set(Extraction.objects.values_list("pk", flat=True)) - before
    return pk


def finished(pk: int) -> Extraction:
    record = wait_for(
        lambda: Extraction.objects.get(pk=pk),
        lambda r: r.status in ("completed", "failed", "cancelled"),
        timeout=180,
        every=0.5,
    )
    assert record.status == "completed", record.error_message
    return record


def at_checkpoint(record: Extraction, samples: float) -> bool:
    """Whether the run's checkpoint has counted `samples`; a run that ended first fails the test
    at once (a completed run keeps no checkpoint, so waiting longer could not help)."""
    assert record.is_active, f"extraction {record.pk} ended ({record.status}) before the kill"
    point = checkpoint.progress(record.output_dir)
    return point is not None and point["samples_done"] >= samples


@pytest.mark.parametrize("kills", [1, 2])
def test_a_killed_extraction_resumes_to_the_files_of_an_uninterrupted_run(
    owner_client, settings, model_and_dataset, kills
):
    model, dataset = model_and_dataset
    uninterrupted = finished(start(owner_client, model, dataset))

    pk = start(owner_client, model, dataset)
    kept = []
    for kill in range(1, kills + 1):
        # At about kill / (kills + 1) of the run: once a checkpoint has counted that far.
        share = kill / (kills + 1)
        record = wait_for(
            lambda: Extraction.objects.get(pk=pk),
            lambda r, share=share: at_checkpoint(r, share * SAMPLES),
            timeout=120,
            every=0.05,
        )
        kill_the_job(record)
        page = wait_for(  # a page is one of those who notice the lost worker
            lambda: owner_client.get(reverse("models_app:extraction", args=[pk]), **HTMX).content.decode(),
            lambda html: f'<p class="card-error" role="alert">{LOST_WORKER_MESSAGE}</p>' in html,
            timeout=settings.JOB_STALE_SECONDS + 10,
        )
        assert Extraction.objects.get(pk=pk).status == "failed"
        point = checkpoint.progress(record.output_dir)
        assert point is not None and 0 < point["samples_done"] < SAMPLES
        assert f"Resume from sample {point['samples_done']}" in page
        assert f"holding {point['samples_done']} of {SAMPLES} samples: Retry continues from them" in page
        kept.append(point["samples_done"])
        owner_client.post(reverse("models_app:extraction-retry", args=[pk]), **HTMX)

    record = finished(pk)
    assert record.attempts == kills + 1 and record.samples_done == SAMPLES
    assert [r["from_sample"] for r in record.metadata["resumes"]] == kept
    assert record.metadata["resumed_from_sample"] == kept[-1]
    assert_same_extraction_files(record.output_dir, uninterrupted.output_dir)
    page = owner_client.get(reverse("models_app:extraction", args=[pk])).content.decode()
    assert f"(resumed {kills}×, the last run from sample {kept[-1]})" in page
