"""Extractions that continue from a checkpoint: stopped (cancel, an error) and run again on the same
folder, they end with the files of a run never interrupted: arrays and top-K bit for bit,
statistics equal."""

from __future__ import annotations

import pytest

from models_app.ml import batches, checkpoint, extraction, loading
from models_app.ml.extraction import ExtractionSettings
from tests.extraction_files import assert_same_extraction_files
from tests.helpers import SAMPLE_TEXTS

# 42 samples of varied lengths; windows of 8 so that a run crosses several.
TEXTS = [f"{i}: {text}" for i in range(6) for text in SAMPLE_TEXTS]
CONTEXT = 16


@pytest.fixture(autouse=True)
def small_windows(monkeypatch):
    monkeypatch.setattr(batches, "WINDOW", 8)


@pytest.fixture(scope="module")
def loaded(model_sources):
    return loading.load(model_sources["llama"], "fp32", device="cpu")


def settings(**overrides) -> ExtractionSettings:
    return ExtractionSettings(
        **{
            "layers": [0, 1],
            "hooks": ["residual", "mlp"],
            "batch_size": 3,
            "context_length": CONTEXT,
            "top_k": 4,
            "dtype": "float32",
            **overrides,
        }
    )


def extract(loaded, folder, options: ExtractionSettings, **kwargs) -> dict:
    return extraction.extract(
        loaded.model, loaded.tokenizer, TEXTS, options, folder, checkpoint_seconds=0, **kwargs
    )


def cancel_at(samples: int):
    """(on_progress, should_cancel) that cancel once `samples` are done."""
    done = [0]
    return (lambda p: done.__setitem__(0, p.samples_done)), (lambda: done[0] >= samples)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_a_cancelled_run_continues_to_the_files_of_an_uninterrupted_one(loaded, tmp_path, dtype, batch_size):
    options = settings(dtype=dtype, batch_size=batch_size)
    extract(loaded, tmp_path / "whole", options)
    on_progress, should_cancel = cancel_at(len(TEXTS) // 2)
    with pytest.raises(extraction.ExtractionCancelled):
        extract(loaded, tmp_path / "resumed", options, on_progress=on_progress, should_cancel=should_cancel)
    kept = checkpoint.progress(tmp_path / "resumed")
    assert kept is not None and len(TEXTS) // 2 <= kept["samples_done"] < len(TEXTS)
    assert list((tmp_path / "resumed").glob("*.npy.partial"))

    meta = extract(loaded, tmp_path / "resumed", options)
    assert meta["resumed_from_sample"] == kept["samples_done"] and len(meta["resumes"]) == 1
    assert_same_extraction_files(tmp_path / "resumed", tmp_path / "whole")
    assert checkpoint.progress(tmp_path / "resumed") is None


def test_a_run_that_fails_continues_from_its_last_checkpoint_and_twice_over(loaded, tmp_path):
    options = settings()
    extract(loaded, tmp_path / "whole", options)

    def failing_after(passes_allowed: int):
        passes = [0]

        def forward(**inputs):
            passes[0] += 1
            if passes[0] > passes_allowed:
                raise RuntimeError("device lost")
            return loaded.model(**inputs)

        return forward

    kept = []
    for passes_allowed in (5, 4):
        with pytest.raises(RuntimeError, match="device lost"):
            extract(loaded, tmp_path / "resumed", options, forward=failing_after(passes_allowed))
        kept.append(checkpoint.progress(tmp_path / "resumed")["samples_done"])
    # Windows of 8 in batches of 3 (3 + 3 + 2): 5 passes reach sample 14, 4 more sample 24.
    assert kept == [14, 24]

    meta = extract(loaded, tmp_path / "resumed", options)
    assert [r["from_sample"] for r in meta["resumes"]] == kept and meta["resumed_from_sample"] == 24
    assert_same_extraction_files(tmp_path / "resumed", tmp_path / "whole")


def test_a_checkpoint_of_other_settings_is_not_continued(loaded, tmp_path):
    on_progress, should_cancel = cancel_at(20)
    with pytest.raises(extraction.ExtractionCancelled):
        extract(loaded, tmp_path / "run", settings(), on_progress=on_progress, should_cancel=should_cancel)

    meta = extract(loaded, tmp_path / "run", settings(top_k=2))
    extract(loaded, tmp_path / "whole", settings(top_k=2))
    assert meta["resumed_from_sample"] is None and meta["resumes"] == []
    assert_same_extraction_files(tmp_path / "run", tmp_path / "whole")


def test_a_checkpoint_of_another_model_or_dataset_is_not_continued(loaded, tmp_path):
    on_progress, should_cancel = cancel_at(20)
    with pytest.raises(extraction.ExtractionCancelled):
        extract(
            loaded,
            tmp_path / "run",
            settings(),
            on_progress=on_progress,
            should_cancel=should_cancel,
            resume_key={"commit": "a"},
        )
    meta = extract(loaded, tmp_path / "run", settings(), resume_key={"commit": "b"})
    assert meta["resumed_from_sample"] is None


@pytest.mark.parametrize("damage", ["cut checkpoint", "missing array", "resized array"])
def test_a_damaged_checkpoint_or_array_starts_over(loaded, tmp_path, damage):
    on_progress, should_cancel = cancel_at(20)
    folder = tmp_path / "run"
    with pytest.raises(extraction.ExtractionCancelled):
        extract(loaded, folder, settings(), on_progress=on_progress, should_cancel=should_cancel)
    if damage == "cut checkpoint":
        state = folder / checkpoint.STATE
        state.write_bytes(state.read_bytes()[:100])
    elif damage == "missing array":
        (folder / "layer_1_mlp.npy.partial").unlink()
    else:
        with open(folder / "layer_0_residual.npy.partial", "r+b") as handle:
            handle.truncate(1000)

    meta = extract(loaded, folder, settings())
    extract(loaded, tmp_path / "whole", settings())
    assert meta["resumed_from_sample"] is None
    assert_same_extraction_files(folder, tmp_path / "whole")


def test_the_halved_batch_size_carries_over(loaded, tmp_path):
    import torch

    calls = [0]

    def forward(**inputs):
        calls[0] += 1
        if calls[0] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected: no GPU here)")
        return loaded.model(**inputs)

    on_progress, should_cancel = cancel_at(12)
    options = settings(batch_size=4)
    with pytest.raises(extraction.ExtractionCancelled):
        extract(
            loaded,
            tmp_path / "run",
            options,
            forward=forward,
            on_progress=on_progress,
            should_cancel=should_cancel,
        )
    meta = extract(loaded, tmp_path / "run", options)
    assert meta["oom_events"] == [{"at_sample": 0, "batch_size": 4, "retried_with": 2}]
    assert meta["final_batch_size"] == 2 and meta["resumed_from_sample"] == 12


def test_a_run_stopped_before_its_first_checkpoint_leaves_nothing(loaded, tmp_path):
    def broken(**inputs):
        raise RuntimeError("device lost")

    with pytest.raises(RuntimeError, match="device lost"):
        extract(loaded, tmp_path / "f", settings(), forward=broken)
    assert list((tmp_path / "f").iterdir()) == []
