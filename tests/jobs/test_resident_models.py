"""A worker keeps the model an extraction used for the next one (models_app/jobs/resident.py):
run in this process with the cache switched on, as a worker's warm-up switches it on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from models_app.jobs import resident
from models_app.jobs.download import run_download
from models_app.jobs.extraction import run_extraction
from models_app.ml import hub as hub_lib
from models_app.ml import loading
from models_app.models import Extraction, LanguageModel
from models_app.services import datasets as dataset_services
from models_app.services import downloads, extractions
from tests.jobs.outputs import TEXTS, arrays, assert_identical

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cache():
    resident.enable(1 << 30, watch=False)  # the watcher's checks are called directly here
    yield resident.models
    resident.disable()


def download(hub, fmt: str) -> LanguageModel:
    record = downloads.create_download(
        hub_lib.preflight("tiny/qwen2", endpoint=hub.endpoint), fmt, token=None, queue=False
    )
    assert run_download(record.pk) == "ready"
    record.refresh_from_db()
    return record


@pytest.fixture
def ready_model(hub) -> LanguageModel:
    return download(hub, "q8")  # bitsandbytes layers: state of their own that a reuse must not upset


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(TEXTS) + "\n")
    return dataset_services.add_from_file(path, "corpus")


@pytest.fixture
def load_calls(monkeypatch) -> list:
    calls = []
    real = loading.load

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(loading, "load", counting)
    return calls


def extract(model, dataset) -> Extraction:
    record = extractions.create(
        queue=False,
        model=model,
        dataset=dataset,
        layers=[0, 1],
        hooks=["residual", "mlp", "attention"],
        batch_size=4,
        context_length=24,
        top_k=3,
    )
    assert run_extraction(record.pk) == "completed", Extraction.objects.get(pk=record.pk).error_message
    record.refresh_from_db()
    return record


@pytest.mark.slow
def test_it_reuses_the_loaded_model_for_a_second_extraction_with_identical_results(
    cache, ready_model, corpus, load_calls
):
    first = extract(ready_model, corpus)
    second = extract(ready_model, corpus)
    assert len(load_calls) == 1
    assert first.metadata["model"]["loaded_from"] == "disk"
    assert second.metadata["model"]["loaded_from"] == "memory"
    assert (
        first.metadata["model"]["effective_quantization"]
        == second.metadata["model"]["effective_quantization"]
        == "q8"
    )
    assert_identical(arrays(first), arrays(second))
    assert first.metadata["statistics"] == second.metadata["statistics"]

    resident.disable()  # and as a command or a worker without the cache would
    third = extract(ready_model, corpus)
    assert len(load_calls) == 2 and third.metadata["model"]["loaded_from"] == "disk"
    assert_identical(arrays(first), arrays(third))


@pytest.mark.slow
def test_it_never_uses_a_kept_model_once_its_files_changed(cache, ready_model, corpus, load_calls):
    extract(ready_model, corpus)
    weights = Path(ready_model.quantized_path) / "model.safetensors"
    rewritten = weights.with_name("rewritten")
    rewritten.write_bytes(weights.read_bytes())
    os.replace(rewritten, weights)  # the same bytes, a new file: as a re-download writes it
    again = extract(ready_model, corpus)
    assert again.metadata["model"]["loaded_from"] == "disk" and len(load_calls) == 2


@pytest.mark.slow
def test_it_releases_a_model_that_is_downloaded_again_or_deleted(cache, hub, corpus, load_calls, monkeypatch):
    from django_q.conf import Conf

    model = download(hub, "fp32")
    extract(model, corpus)
    assert resident.forget_stale() == [] and len(cache) == 1
    monkeypatch.setattr(Conf, "SYNC", False)  # queued for a downloads worker, which is not running
    downloads.restart(model, "fp32")
    assert resident.forget_stale() == [(model.pk, "the model is being downloaded again")]
    assert len(cache) == 0

    assert run_download(model.pk) == "ready"
    model.refresh_from_db()
    after = extract(model, corpus)
    assert after.metadata["model"]["loaded_from"] == "disk" and len(cache) == 1
    LanguageModel.objects.get(pk=model.pk).delete_with_files()
    assert resident.forget_stale() == [(model.pk, "the model was deleted")]
    assert len(cache) == 0


@pytest.mark.slow
def test_it_loads_afresh_a_model_downloaded_again_between_two_extractions(cache, hub, corpus, load_calls):
    model = download(hub, "fp32")
    extract(model, corpus)
    downloads.restart(model, "fp32")  # runs at once here: no check ever saw it queued
    model.refresh_from_db()
    assert model.status == "ready", model.error_message
    loads = len(load_calls)
    assert extract(model, corpus).metadata["model"]["loaded_from"] == "disk"
    assert len(load_calls) == loads + 1


@pytest.mark.slow
def test_it_releases_the_model_after_a_failed_extraction_and_keeps_it_after_a_cancel(
    cache, ready_model, corpus, load_calls, monkeypatch
):
    from models_app.ml import extraction as engine

    extract(ready_model, corpus)
    real = engine.extract

    def fails_midway(model, *args, **kwargs):
        model(input_ids=torch.tensor([[1, 2, 3]]))
        raise RuntimeError("a failure inside the engine")

    monkeypatch.setattr(engine, "extract", fails_midway)
    record = extractions.create(
        queue=False, model=ready_model, dataset=corpus, layers=[0], hooks=["residual"]
    )
    assert run_extraction(record.pk) == "failed"
    assert len(cache) == 0

    monkeypatch.setattr(engine, "extract", real)
    extract(ready_model, corpus)
    assert len(load_calls) == 2 and len(cache) == 1

    def cancelled(*args, **kwargs):
        raise engine.ExtractionCancelled()

    monkeypatch.setattr(engine, "extract", cancelled)
    record = extractions.create(
        queue=False, model=ready_model, dataset=corpus, layers=[0], hooks=["residual"]
    )
    assert run_extraction(record.pk) == "cancelled"
    assert len(cache) == 1


@pytest.mark.slow
def test_it_does_not_keep_a_model_that_an_extraction_left_a_hook_on(
    cache, ready_model, corpus, load_calls, monkeypatch
):
    from models_app.ml import extraction as engine

    real = engine.extract

    def leaves_a_hook(model, *args, **kwargs):
        model.model.layers[0].register_forward_hook(lambda *a: None)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(engine, "extract", leaves_a_hook)
    extract(ready_model, corpus)
    assert len(cache) == 0


@pytest.mark.slow
def test_it_keeps_the_model_unchanged_through_an_out_of_memory_retry(
    cache, ready_model, corpus, load_calls, monkeypatch
):
    from models_app.ml import extraction as engine
    from models_app.ml.capture import StopForward

    real = engine.extract
    failures = {"left": 2}

    def runs_out_of_memory_twice(model, *args, **kwargs):
        def forward(**inputs):
            if failures["left"]:
                failures["left"] -= 1
                try:
                    model(**inputs)  # the hooks capture, then the pass "runs out of memory"
                except StopForward:
                    pass
                raise torch.OutOfMemoryError("CUDA out of memory (injected)")
            return model(**inputs)

        return real(model, *args, forward=forward, **kwargs)

    monkeypatch.setattr(engine, "extract", runs_out_of_memory_twice)
    first = extract(ready_model, corpus)
    assert first.metadata["oom_events"] and len(cache) == 1
    monkeypatch.setattr(engine, "extract", real)
    second = extract(ready_model, corpus)
    assert second.metadata["model"]["loaded_from"] == "memory" and len(load_calls) == 1
    resident.disable()
    fresh = extract(ready_model, corpus)
    assert_identical(arrays(second), arrays(fresh))


def test_it_takes_its_budget_from_the_setting_or_the_machines_memory(settings):
    from models_app.ml.resident import default_budget

    settings.WORKER_MODEL_CACHE_BYTES = None
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        assert default_budget("cpu") == memory // 4
        assert resident.enable(watch=False) == default_budget(loading.default_device()) > 0
        settings.WORKER_MODEL_CACHE_BYTES = 0
        assert resident.enable(watch=False) == 0
    finally:
        resident.disable()


class StandIn:
    """A LoadedModel's shape, for the cache's rules (no weights needed)."""

    def __init__(self, nbytes: int = 100) -> None:
        self.model = torch.nn.Linear(2, 2).eval()
        self.footprint_bytes = nbytes


def use(record: LanguageModel, device: str, nbytes: int = 100) -> bool:
    with resident.loaded_model(record, "fp16", device, lambda: StandIn(nbytes)) as (_loaded, from_memory):
        return from_memory


def stand_in_record(pk: int, footprint: int | None = None) -> LanguageModel:
    return LanguageModel(pk=pk, status="ready", quantization="fp16", memory_footprint_bytes=footprint)


def test_it_keeps_no_other_model_on_the_gpu_a_job_uses(cache):
    first, second, third = (stand_in_record(pk) for pk in (1, 2, 3))
    use(first, "cuda:0")
    use(second, "cpu")
    use(third, "cuda:0")
    assert [key[:3] for key, _ in cache.snapshot()] == [(2, "fp16", "cpu"), (3, "fp16", "cuda:0")]
    assert use(second, "cpu") and not use(first, "cuda:0")
    assert [key[0] for key, _ in cache.snapshot()] == [2, 1]


def test_it_makes_room_on_the_cpu_before_a_load_not_after(cache):
    cache.budget_bytes = 1000
    use(stand_in_record(1), "cpu", nbytes=600)
    loads = []

    def load():
        loads.append([key[0] for key, _ in cache.snapshot()])  # what is kept while it loads
        return StandIn(600)

    with resident.loaded_model(stand_in_record(2, footprint=600), "fp16", "cpu", load):
        pass
    assert loads == [[]]  # model 1 went before model 2 was loaded
    assert [key[0] for key, _ in cache.snapshot()] == [2]
