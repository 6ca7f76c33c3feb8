"""The extraction engine against transformers' own outputs, on tiny models of every family."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models_app.ml import checkpoint, extraction, loading
from models_app.ml.extraction import ExtractionSettings
from tests.helpers import SAMPLE_TEXTS as TEXTS
from tests.tinymodels import FAMILIES

CONTEXT = 16
# Blocks whose output is exactly input + attention + MLP (no post-norms, no parallel branches).
SEQUENTIAL = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gpt2", "phi3"}


def fp32(model_sources, family):
    return loading.load(model_sources[family], "fp32", device="cpu")


def run(loaded, tmp_path, **overrides):
    settings = ExtractionSettings(
        **{
            "layers": [0, 1],
            "hooks": ["residual", "mlp", "attention"],
            "batch_size": 3,
            "context_length": CONTEXT,
            "top_k": 5,
            "dtype": "float32",
            **overrides,
        }
    )
    meta = extraction.extract(loaded.model, loaded.tokenizer, TEXTS, settings, tmp_path)
    return meta, {name: np.load(tmp_path / name) for name in meta["files"] if name.endswith(".npy")}


def reference_hidden_states(loaded):
    tok = loaded.tokenizer
    encoded = tok(TEXTS, padding="max_length", truncation=True, max_length=CONTEXT, return_tensors="pt")
    with torch.inference_mode():
        out = loaded.model(**encoded, output_hidden_states=True, use_cache=False)
    return encoded["attention_mask"].bool().numpy(), [h.numpy() for h in out.hidden_states]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_residual_matches_transformers_hidden_states(family, model_sources, tmp_path):
    loaded = fp32(model_sources, family)
    meta, arrays = run(loaded, tmp_path)
    mask, hidden_states = reference_hidden_states(loaded)
    residual0 = arrays["layer_0_residual.npy"]
    assert residual0.shape == (len(TEXTS), CONTEXT, 128) and residual0.dtype == np.float32
    np.testing.assert_allclose(residual0[mask], hidden_states[1][mask], rtol=1e-5, atol=1e-5)
    for name in ("layer_0_residual.npy", "layer_1_mlp.npy", "layer_1_attention.npy"):
        assert not arrays[name][~mask].any(), f"{name}: padding must be zero"
    assert (arrays["attention_mask.npy"].astype(bool) == mask).all()
    assert meta["complete"] and meta["samples"] == len(TEXTS)
    if family in SEQUENTIAL:
        rebuilt = residual0 + arrays["layer_1_attention.npy"] + arrays["layer_1_mlp.npy"]
        np.testing.assert_allclose(rebuilt[mask], arrays["layer_1_residual.npy"][mask], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "float32"])  # counted per value / merged moments
def test_statistics_equal_numpy_over_real_tokens(dtype, model_sources, tmp_path):
    meta, arrays = run(fp32(model_sources, "llama"), tmp_path, dtype=dtype)
    mask = arrays["attention_mask.npy"].astype(bool)
    for key, stats in meta["statistics"].items():
        values = arrays[f"{key}.npy"]
        assert values.dtype == np.dtype(dtype)
        real = values[mask].astype(np.float64)
        assert stats["tokens"] == mask.sum()
        assert stats["mean"] == pytest.approx(real.mean(), rel=1e-9, abs=1e-12)
        assert stats["std"] == pytest.approx(real.std(), rel=1e-9)
        assert stats["mean_abs"] == pytest.approx(np.abs(real).mean(), rel=1e-9)
        assert (stats["min"], stats["max"]) == (real.min(), real.max())
        assert stats["sparsity_percent"] == pytest.approx(100 * (np.abs(real) < 0.01).mean())
        assert stats["l2_norm_mean"] == pytest.approx(np.linalg.norm(real, axis=-1).mean(), rel=1e-9)
        assert stats["file_size"] == (tmp_path / f"{key}.npy").stat().st_size
        histogram = stats["histogram"]
        edges = np.array(histogram["edges"])
        expected, _ = np.histogram(real[(real >= edges[0]) & (real <= edges[-1])], bins=edges)
        assert np.abs(np.array(histogram["counts"]) - expected).sum() <= 2  # a value on an edge may move
        assert sum(histogram["counts"]) + histogram["below"] + histogram["above"] == real.size
    assert (
        json.loads((tmp_path / "metadata.json").read_text())["statistics"].keys() == meta["statistics"].keys()
    )


def test_top_k_equals_a_brute_force_top_k(model_sources, tmp_path):
    meta, arrays = run(fp32(model_sources, "qwen2"), tmp_path, top_k=4)
    mask = arrays["attention_mask.npy"].astype(bool)
    for key in meta["statistics"]:
        values = arrays[f"{key}.npy"]
        top = np.load(tmp_path / f"topk_{key}.npz")
        samples, tokens = np.nonzero(mask)
        real = values[samples, tokens]  # [real tokens, hidden]
        order = np.argsort(-real, axis=0, kind="stable")[:4]  # [k, hidden]
        expected = np.take_along_axis(real, order, axis=0).T
        np.testing.assert_array_equal(top["values"], expected)
        got = values[top["sample_index"], top["token_index"], np.arange(values.shape[2])[:, None]]
        np.testing.assert_array_equal(got, expected)  # the positions hold those values
        assert mask[top["sample_index"], top["token_index"]].all()


def test_results_do_not_depend_on_the_batch_size_beyond_rounding(model_sources, tmp_path):
    loaded = fp32(model_sources, "mistral")
    outputs = []
    for batch_size in (1, 3, 8):
        meta, arrays = run(loaded, tmp_path / str(batch_size), batch_size=batch_size)
        outputs.append((meta, arrays))
    (meta1, first), rest = outputs[0], outputs[1:]
    for meta, arrays in rest:
        for name, values in first.items():
            # Batches of other lengths run other kernels: equal up to float32 rounding.
            np.testing.assert_allclose(arrays[name], values, rtol=1e-4, atol=1e-6, err_msg=name)
        for key, stats in meta1["statistics"].items():
            assert meta["statistics"][key]["tokens"] == stats["tokens"]
            assert meta["statistics"][key]["mean"] == pytest.approx(stats["mean"], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_torchs_threads_and_the_writer_give_the_same_files(dtype, model_sources, tmp_path, monkeypatch):
    """On the CPU a batch is written and counted on torch's own threads (ml/team.py); on a GPU by
    the writer thread and the loop, which this run takes when the team is unavailable."""
    from models_app.ml import team

    loaded = fp32(model_sources, "qwen3")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # whatever the host gives: the first run takes the team's way
    try:
        assert team.available()
        shared_meta, shared = run(loaded, tmp_path / "team", dtype=dtype, batch_size=2)
        monkeypatch.setattr(team, "available", lambda: False)
        alone_meta, alone = run(loaded, tmp_path / "writer", dtype=dtype, batch_size=2)
    finally:
        torch.set_num_threads(threads)

    assert shared.keys() == alone.keys()
    for name, values in alone.items():
        np.testing.assert_array_equal(shared[name], values, err_msg=name)
    assert shared_meta["statistics"] == alone_meta["statistics"]
    for key in shared_meta["statistics"]:
        with (
            np.load(tmp_path / "team" / f"topk_{key}.npz") as team_top,
            np.load(tmp_path / "writer" / f"topk_{key}.npz") as writer_top,
        ):
            for part in ("values", "sample_index", "token_index"):
                np.testing.assert_array_equal(team_top[part], writer_top[part], err_msg=f"{key} {part}")


def test_it_removes_every_hook_and_stops_after_the_deepest_layer(model_sources, tmp_path):
    loaded = fp32(model_sources, "llama")
    layers = loaded.model.model.layers
    calls = []
    probe = layers[1].register_forward_hook(lambda *args: calls.append(1))
    run(loaded, tmp_path, layers=[0], hooks=["residual"])
    probe.remove()
    assert calls == []  # layer 1 never ran
    leftover = [name for name, m in loaded.model.named_modules() if m._forward_hooks]
    assert leftover == []


@pytest.mark.parametrize("fmt", ["q8", "q4"])
def test_quantized_models_extract_too(fmt, model_sources, tmp_path):
    loaded = loading.load(model_sources["llama"], fmt, device="cpu")
    _meta, arrays = run(loaded, tmp_path, dtype="float16")
    reference = run(fp32(model_sources, "llama"), tmp_path / "fp32")[1]
    mask = arrays["attention_mask.npy"].astype(bool)
    got, want = (
        arrays["layer_1_residual.npy"][mask].astype(np.float32),
        reference["layer_1_residual.npy"][mask],
    )
    assert np.isfinite(got).all()
    # Quantized weights change the numbers but not what they are: strongly correlated with FP32.
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.9


def test_an_out_of_memory_batch_is_halved_and_retried(model_sources, tmp_path):
    """The out-of-memory error is injected: this CPU machine has memory to spare."""
    loaded = fp32(model_sources, "gpt2")
    calls = {"n": 0}

    def forward(**inputs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second batch, at batch size 4
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return loaded.model(**inputs)

    settings = ExtractionSettings(
        layers=[0, 1], hooks=["residual", "mlp"], batch_size=4, context_length=CONTEXT, dtype="float32"
    )
    meta = extraction.extract(
        loaded.model, loaded.tokenizer, TEXTS, settings, tmp_path / "oom", forward=forward
    )
    assert meta["oom_events"] == [{"at_sample": 4, "batch_size": 4, "retried_with": 2}]
    assert meta["final_batch_size"] == 2 and meta["complete"]
    clean = run(loaded, tmp_path / "clean", layers=[0, 1], hooks=["residual", "mlp"], batch_size=4)[1]
    for name, values in clean.items():
        np.testing.assert_allclose(np.load(tmp_path / "oom" / name), values, rtol=1e-5, atol=1e-6)


def test_cancellation_keeps_a_checkpoint_and_a_failure_before_any_leaves_nothing(model_sources, tmp_path):
    loaded = fp32(model_sources, "gpt2")
    progress = []
    settings = ExtractionSettings(layers=[1], hooks=["mlp"], batch_size=2, context_length=CONTEXT)
    with pytest.raises(extraction.ExtractionCancelled):
        extraction.extract(
            loaded.model,
            loaded.tokenizer,
            TEXTS,
            settings,
            tmp_path / "c",
            on_progress=progress.append,
            should_cancel=lambda: len(progress) >= 2,
        )
    assert [p.samples_done for p in progress] == [2, 4]
    assert (
        progress[-1].tokens_per_second > 0
    )  # bytes_written follows the writer thread, a batch or two behind
    # What the two batches wrote stays for a resume (tests/ml/test_resume.py), counted there.
    assert checkpoint.progress(tmp_path / "c") == {"samples_done": 4, "samples_total": len(TEXTS)}

    def broken(**inputs):
        raise RuntimeError("device lost")

    with pytest.raises(RuntimeError, match="device lost"):
        extraction.extract(loaded.model, loaded.tokenizer, TEXTS, settings, tmp_path / "f", forward=broken)
    assert list((tmp_path / "f").iterdir()) == []


def test_it_refuses_impossible_settings_before_any_work(model_sources, tmp_path):
    loaded = fp32(model_sources, "gpt2")
    for overrides, message in (
        ({"layers": [2]}, "Layer 2 does not exist"),
        ({"layers": []}, "at least one layer"),
        ({"hooks": ["logits"]}, "Hook types"),
        ({"batch_size": 0}, "at least 1"),
    ):
        settings = ExtractionSettings(**{"layers": [0], "hooks": ["residual"], **overrides})
        with pytest.raises(extraction.ExtractionError, match=message):
            extraction.extract(loaded.model, loaded.tokenizer, TEXTS, settings, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_micro_batches_give_the_same_arrays_as_whole_batches(model_sources, tmp_path):
    loaded = fp32(model_sources, "llama")
    whole = run(loaded, tmp_path / "whole", batch_size=4)[1]
    progress = []
    settings = ExtractionSettings(
        layers=[0, 1],
        hooks=["residual", "mlp", "attention"],
        batch_size=4,
        micro_batch_size=1,
        context_length=CONTEXT,
        top_k=5,
        dtype="float32",
    )
    meta = extraction.extract(
        loaded.model, loaded.tokenizer, TEXTS, settings, tmp_path / "micro", on_progress=progress.append
    )
    assert [p.samples_done for p in progress] == [4, 7]  # progress per batch, forward per sample
    assert {p.batch_size for p in progress} == {1} and meta["settings"]["micro_batch_size"] == 1
    for name, values in whole.items():
        np.testing.assert_allclose(np.load(tmp_path / "micro" / name), values, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen3"])
def test_real_positions_equal_a_forward_of_each_sample_alone(family, model_sources, tmp_path):
    """Batches are padded to their longest sample only, and rows come back to their own index:
    each row equals the sample run alone, with no padding at all."""
    loaded = fp32(model_sources, family)
    meta, arrays = run(loaded, tmp_path, layers=[0, 1], hooks=["residual", "mlp"], batch_size=3)
    tok = loaded.tokenizer
    mask = arrays["attention_mask.npy"].astype(bool)
    for index, text in enumerate(TEXTS):
        encoded = tok([text], truncation=True, max_length=CONTEXT, return_tensors="pt")
        length = encoded["input_ids"].shape[1]
        assert mask[index].sum() == length and mask[index, :length].all()
        assert (arrays["tokens.npy"][index, :length] == encoded["input_ids"][0].numpy()).all()
        with torch.inference_mode():
            out = loaded.model(**encoded, output_hidden_states=True, use_cache=False)
        np.testing.assert_allclose(
            arrays["layer_0_residual.npy"][index, :length],
            out.hidden_states[1][0].numpy(),
            rtol=1e-4,
            atol=1e-5,
            err_msg=f"sample {index}",
        )
        assert not arrays["layer_1_mlp.npy"][index, length:].any()  # padding reads as zero
    assert meta["real_tokens"] == int(mask.sum()) < meta["padded_tokens"]


def test_padding_is_never_written_so_the_files_have_holes(model_sources, tmp_path):
    loaded = fp32(model_sources, "llama")
    texts = ["short"] * 300 + ["a much longer text that fills the whole context window of the model " * 4] * 4
    settings = ExtractionSettings(
        layers=[0], hooks=["residual"], batch_size=16, context_length=128, dtype="float32"
    )
    meta = extraction.extract(loaded.model, loaded.tokenizer, texts, settings, tmp_path)
    stats = meta["statistics"]["layer_0_residual"]
    assert stats["file_size"] == 128 + 304 * 128 * 128 * 4  # header + the full logical shape
    real_share = meta["real_tokens"] / meta["padded_tokens"]
    # Disk blocks follow the real tokens (rows start on their own offsets, so allow a few pages per row).
    assert stats["disk_size"] < stats["file_size"] * real_share + 304 * 2 * 4096
    assert meta["size"]["disk_bytes"] < meta["size"]["logical_bytes"] / 3


def test_several_windows_give_the_same_files_as_one(model_sources, tmp_path, monkeypatch):
    from models_app.ml import batches

    loaded = fp32(model_sources, "gpt2")
    one = run(loaded, tmp_path / "one", batch_size=2)[1]
    monkeypatch.setattr(batches, "WINDOW", 3)  # 7 texts: windows of 3, 3 and 1, each sorted apart
    meta, several = run(loaded, tmp_path / "several", batch_size=2)
    assert meta["samples"] == len(TEXTS)
    for name, values in one.items():
        np.testing.assert_allclose(several[name], values, rtol=1e-4, atol=1e-6, err_msg=name)


def test_a_text_with_no_tokens_leaves_an_empty_row(model_sources, tmp_path):
    loaded = fp32(model_sources, "gpt2")  # its tokenizer adds no special token to an empty text
    texts = ["", TEXTS[0], ""]
    assert loaded.tokenizer("")["input_ids"] == []
    settings = ExtractionSettings(layers=[0], hooks=["residual"], batch_size=2, context_length=CONTEXT)
    meta = extraction.extract(loaded.model, loaded.tokenizer, texts, settings, tmp_path)
    mask = np.load(tmp_path / "attention_mask.npy")
    assert mask[0].sum() == mask[2].sum() == 0 and mask[1].sum() > 0
    assert (
        meta["real_tokens"] == mask.sum() and meta["statistics"]["layer_0_residual"]["tokens"] == mask.sum()
    )


def test_an_mlp_output_added_to_in_place_by_its_block_is_kept_as_the_mlp_gave_it(model_sources, tmp_path):
    """Falcon's parallel attention adds the attention output to the MLP's output tensor in place
    before the block returns; the file must hold the MLP's output alone."""
    loaded = fp32(model_sources, "falcon")
    assert loaded.model.config.parallel_attn or loaded.model.config.new_decoder_architecture
    _meta, arrays = run(loaded, tmp_path, layers=[0], hooks=["mlp"], dtype="float32")
    seen = []
    mlp = loaded.model.transformer.h[0].mlp
    handle = mlp.register_forward_hook(lambda _m, _i, output: seen.append(output.clone()))
    try:
        encoded = loaded.tokenizer([TEXTS[0]], truncation=True, max_length=CONTEXT, return_tensors="pt")
        with torch.inference_mode():
            loaded.model(**encoded, use_cache=False)
    finally:
        handle.remove()
    length = encoded["input_ids"].shape[1]
    np.testing.assert_allclose(
        arrays["layer_0_mlp.npy"][0, :length], seen[0][0].numpy(), rtol=1e-4, atol=1e-5
    )


def test_an_out_of_memory_error_after_the_forward_pass_is_not_retried(model_sources, tmp_path, monkeypatch):
    """Injected: an out-of-memory error in the statistics, after the forward pass, must fail the
    run rather than count the batch twice at half size."""
    from models_app.ml import stats

    loaded = fp32(model_sources, "gpt2")
    calls = {"n": 0}
    original = stats._Moments.update

    def update(self, values):
        calls["n"] += 1
        if calls["n"] == 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, values)

    monkeypatch.setattr(stats._Moments, "update", update)
    settings = ExtractionSettings(
        layers=[0, 1], hooks=["residual"], batch_size=4, context_length=CONTEXT, dtype="float32"
    )
    with pytest.raises(torch.OutOfMemoryError):
        extraction.extract(loaded.model, loaded.tokenizer, TEXTS, settings, tmp_path / "x")
    assert list((tmp_path / "x").iterdir()) == []


def test_a_stopped_run_leaves_no_tokenizing_thread_behind(model_sources):
    import threading
    import time as clock

    from models_app.ml.batches import windows

    tokenizer = fp32(model_sources, "gpt2").tokenizer
    stream = windows(tokenizer, TEXTS * 4, 8, CONTEXT, lambda: False, size=4)  # two windows, then "done"
    next(stream)
    clock.sleep(0.5)  # the producer has tokenized ahead and waits to hand over the next window
    started = clock.perf_counter()
    stream.close()
    assert clock.perf_counter() - started < 0.5
    assert not [t for t in threading.enumerate() if t.name == "tokenize-ahead"]


def test_a_run_leaves_no_writer_thread_behind(model_sources, tmp_path):
    """Each extraction starts one writer and one syncing thread and ends them, whether it
    finishes or is cancelled."""
    import threading

    def file_threads():
        return [t for t in threading.enumerate() if t.name in ("activation-writer", "activation-syncer")]

    loaded = fp32(model_sources, "gpt2")
    settings = ExtractionSettings(layers=[0], hooks=["residual"], batch_size=4, context_length=CONTEXT)
    before = file_threads()
    extraction.extract(loaded.model, loaded.tokenizer, TEXTS, settings, tmp_path / "done")
    with pytest.raises(extraction.ExtractionCancelled):
        extraction.extract(
            loaded.model,
            loaded.tokenizer,
            TEXTS,
            settings,
            tmp_path / "cancelled",
            should_cancel=lambda: True,
        )
    assert file_threads() == before
