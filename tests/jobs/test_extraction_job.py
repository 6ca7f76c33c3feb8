"""Extraction through the job and the CLI, on a model downloaded for real."""

from __future__ import annotations

import json
import re
import time
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from models_app.jobs.extraction import run_extraction
from models_app.models import Dataset, Extraction, LanguageModel
from models_app.services import extractions as extraction_services
from tests.extraction_files import engine_cancelled_at

# Slow: every test first downloads a model by the real job.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def ready_model(hub):
    run("download_model", "tiny/qwen2", "--quantization", "q8")
    return LanguageModel.objects.get()


@pytest.fixture
def corpus(hub):
    run("add_dataset", "data/corpus", "--name", "corpus")
    return Dataset.objects.get()


def test_the_cli_extracts_to_the_storage_layout(ready_model, corpus, settings):
    out = run(
        "extract_activations",
        str(ready_model.pk),
        "--dataset",
        str(corpus.pk),
        "--layers",
        "0,1",
        "--hooks",
        "residual,mlp",
        "--batch-size",
        "4",
        "--max-samples",
        "10",
        "--context-length",
        "24",
        "--top-k",
        "3",
    )
    record = Extraction.objects.get()
    assert "Completed: 10 samples" in out and record.status == "completed"
    folder = settings.ACTIVATIONS_DIR / str(record.pk)
    names = {p.name for p in folder.iterdir()}
    assert names == {
        "layer_0_residual.npy",
        "layer_0_mlp.npy",
        "layer_1_residual.npy",
        "layer_1_mlp.npy",
        "tokens.npy",
        "attention_mask.npy",
        "metadata.json",
        "topk_layer_0_residual.npz",
        "topk_layer_0_mlp.npz",
        "topk_layer_1_residual.npz",
        "topk_layer_1_mlp.npz",
    }
    assert np.load(folder / "layer_1_mlp.npy", mmap_mode="r").shape == (10, 24, 128)
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["model"]["repo_id"] == "tiny/qwen2" and meta["model"]["effective_quantization"] == "q8"
    assert meta["model"]["commit_sha"] == ready_model.commit_sha and meta["dataset"]["name"] == "corpus"
    assert meta["statistics"]["layer_1_mlp"]["module"] == "model.layers.1.mlp"
    assert record.statistics.keys() == meta["statistics"].keys()
    assert record.samples_done == 10 and record.progress == 100.0 and record.bytes_written > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layers", "2"], "Layer 2 does not exist: this model has layers 0 to 1."),
        (["--layers", "0", "--hooks", ""], "Select at least one hook type."),
        (["--layers", "0", "--batch-size", "0"], "Batch size must be between 1 and 512."),
        (["--layers", "0", "--batch-size", "513"], "Batch size must be between 1 and 512."),
        (["--layers", "0", "--max-samples", "0"], "Max samples must be at least 1"),
        (["--layers", "0", "--context-length", "100000"], "This model reads at most 256 tokens."),
    ],
)
def test_the_cli_refuses_bad_settings(ready_model, corpus, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("extract_activations", str(ready_model.pk), "--dataset", str(corpus.pk), *args)
    assert not Extraction.objects.exists()


def test_a_model_that_is_not_ready_is_refused(ready_model, corpus):
    LanguageModel.objects.filter(pk=ready_model.pk).update(status="downloading")
    with pytest.raises(CommandError, match="is not ready"):
        run("extract_activations", str(ready_model.pk), "--dataset", str(corpus.pk), "--layers", "0")


def test_a_cancelled_extraction_keeps_what_it_did_until_deleted(ready_model, corpus, settings):
    record = extraction_services.create(
        queue=False,
        model=ready_model,
        dataset=corpus,
        layers=[0],
        hooks=["residual"],
        batch_size=1,
        context_length=16,
    )
    Extraction.objects.filter(pk=record.pk).update(cancel_requested=True)
    assert run_extraction(record.pk) == "not claimed"
    Extraction.objects.filter(pk=record.pk).update(cancel_requested=False)

    calls = {"n": 0}
    from models_app.ml import extraction as engine

    real_extract = engine.extract

    def extract_then_cancel(*args, should_cancel, on_progress, **kwargs):
        def progress(p):
            on_progress(p)
            calls["n"] += 1
            if calls["n"] == 3:
                Extraction.objects.filter(pk=record.pk).update(cancel_requested=True)
                deadline = time.monotonic() + 5  # the job's watcher notices within half a second
                while not should_cancel() and time.monotonic() < deadline:
                    time.sleep(0.05)

        return real_extract(*args, should_cancel=should_cancel, on_progress=progress, **kwargs)

    engine.extract = extract_then_cancel  # wraps the real engine to cancel mid-run
    try:
        assert run_extraction(record.pk) == "cancelled"
    finally:
        engine.extract = real_extract
    record.refresh_from_db()
    assert record.status == "cancelled" and calls["n"] < corpus.num_samples  # stopped early
    # The samples done are kept for a Retry, counted by the checkpoint the cancel took.
    assert record.resume_point == {"samples_done": calls["n"], "samples_total": corpus.num_samples}
    assert record.delete_with_files() > 0 and not (settings.ACTIVATIONS_DIR / str(record.pk)).exists()


def test_retry_extraction_waits_for_a_killed_run_to_count_as_stopped_then_continues_it(
    ready_model, corpus, settings
):
    """A terminal's run killed with SIGKILL leaves its record running with a heartbeat that
    stops: retry_extraction says when it can retry, and once the silence is long enough it fails
    the lost run itself (as a page would) and continues from the checkpoint."""
    from datetime import timedelta

    from django.utils import timezone

    from models_app.ml import checkpoint

    record = extraction_services.create(
        queue=False, model=ready_model, dataset=corpus, layers=[0], hooks=["residual"], batch_size=2
    )
    with engine_cancelled_at(4):  # leaves a checkpoint at sample 4, as a kill would
        run_extraction(record.pk)
    assert checkpoint.progress(record.output_dir) == {"samples_done": 4, "samples_total": corpus.num_samples}
    # What a SIGKILL leaves: the record still running, its heartbeat fresh for a few seconds.
    Extraction.objects.filter(pk=record.pk).update(status="extracting", heartbeat_at=timezone.now())
    with pytest.raises(CommandError, match=rf"is extracting\. .* silent for {settings.JOB_STALE_SECONDS} s"):
        run("retry_extraction", str(record.pk))

    Extraction.objects.filter(pk=record.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 1)
    )
    out = run("retry_extraction", str(record.pk))
    record.refresh_from_db()
    assert "from sample 4" in out and record.status == "completed"
    assert record.metadata["resumed_from_sample"] == 4
