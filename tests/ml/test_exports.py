"""Exports of a real tiny extraction (the engine run on a tiny Llama): every real token, bit for bit
and in dataset order, in both formats; SAELens' packed rows, its features and its shuffle; and
nothing left behind by a cancelled, failed or refused export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pytest
import torch

from models_app.ml import extraction, loading
from models_app.ml.exports import ExportCancelled, ExportError, export, export_saelens, export_tokens
from models_app.ml.extraction import ExtractionSettings
from tests.helpers import SAMPLE_TEXTS
from tests.tinymodels import build_model

# A sample without a single token among them: nothing of it is exported.
TEXTS = [*SAMPLE_TEXTS[:2], "", *SAMPLE_TEXTS[2:]]
CONTEXT = 16
KEYS = ["layer_0_residual", "layer_0_mlp", "layer_1_residual", "layer_1_mlp"]
PROVENANCE = {
    "model": {
        "repo_id": "tiny/llama",
        "revision": "main",
        "commit_sha": "0123456789abcdef0123456789abcdef01234567",
        "requested_quantization": "fp32",
        "effective_quantization": "fp32",
    },
    "dataset": {"id": 3, "name": "corpus", "source": "hub:data/corpus"},
    "extraction_id": 7,
}
# Bytes read at a time: batches of a few tokens or rows, which cross samples, rows and shards.
FEW_TOKENS, FEW_ROWS, FEW_SHARD_ROWS = 15_000, 30_000, 50_000


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """dtype -> the folder of a completed extraction in that dtype."""
    loaded = loading.load(build_model("llama", tmp_path_factory.mktemp("tiny-llama")), "fp32", device="cpu")
    folders = {}
    for dtype in ("float32", "float16"):
        folder = tmp_path_factory.mktemp(f"extraction-{dtype}")
        settings = ExtractionSettings(
            layers=[0, 1], hooks=["residual", "mlp"], batch_size=3, context_length=CONTEXT, dtype=dtype
        )
        extraction.extract(loaded.model, loaded.tokenizer, TEXTS, settings, folder, metadata=PROVENANCE)
        folders[dtype] = folder
    return folders


def real_tokens(folder, name: str) -> np.ndarray:
    """What an extraction file holds at its real tokens, sample after sample: [n_real_tokens, ...]."""
    mask = np.load(folder / "attention_mask.npy").astype(bool)
    return np.load(folder / name)[mask]


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert (got.dtype, got.shape) == (want.dtype, want.shape)
    assert got.tobytes() == want.tobytes()


def module_of(folder, key: str) -> str:
    return json.loads((folder / "metadata.json").read_text())["statistics"][key]["module"]


def uneven_context(total: int) -> int:
    """A row length that leaves a last partial row."""
    return next(size for size in range(5, total) if total % size)


def rows_of(out) -> dict[str, np.ndarray]:
    """Each column of a saved dataset as the values its Arrow files hold, [rows, *shape]: read
    without `datasets`' formatters, which may widen them (a batch of int32 lists becomes int64)."""
    cache = datasets.load_from_disk(str(out))
    columns = {}
    for name, feature in cache.features.items():
        values = cache.data.column(name).combine_chunks()
        values = values.storage if isinstance(values, pa.ExtensionArray) else values
        while pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type):
            values = values.flatten()
        shape = feature.shape if isinstance(feature, datasets.Array2D) else (feature.length,)
        columns[name] = values.to_numpy(zero_copy_only=False).reshape(len(cache), *shape)
    return columns


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_it_exports_every_real_token_flat_and_in_dataset_order(extracted, dtype, tmp_path):
    folder = extracted[dtype]
    reports = []
    manifest = export_tokens(folder, tmp_path / "flat", on_progress=reports.append, batch_bytes=FEW_TOKENS)
    out = tmp_path / "flat"
    mask = np.load(folder / "attention_mask.npy").astype(bool)
    total = int(mask.sum())
    for key in KEYS:
        assert_same_bits(np.load(out / f"{key}.npy"), real_tokens(folder, f"{key}.npy"))
    assert_same_bits(np.load(out / "token_ids.npy"), real_tokens(folder, "tokens.npy"))
    samples, positions = np.nonzero(mask)
    assert_same_bits(np.load(out / "sample_index.npy"), samples.astype(np.int32))
    assert_same_bits(np.load(out / "position.npy"), positions.astype(np.int32))
    assert sorted(p.name for p in out.iterdir()) == sorted([*manifest["files"], "manifest.json"])
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["model"] == {
        "repo_id": "tiny/llama",
        "revision": "main",
        "commit": PROVENANCE["model"]["commit_sha"],
        "format": "fp32",
        "requested_format": "fp32",
    }
    assert (manifest["dataset"], manifest["extraction_id"], manifest["dtype"]) == (
        PROVENANCE["dataset"],
        7,
        dtype,
    )
    assert [h["key"] for h in manifest["hooks"]] == KEYS
    assert manifest["hooks"][1]["module"] == "model.layers.0.mlp"
    assert (manifest["samples"], manifest["real_tokens"], manifest["tokens"]) == (len(TEXTS), total, total)
    assert len(reports) > 5 and [r.tokens_done for r in reports] == sorted({r.tokens_done for r in reports})
    assert (reports[-1].tokens_done, reports[-1].tokens_total) == (total, total)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_saelens_rows_are_the_real_tokens_packed_and_the_last_partial_row_is_dropped(
    extracted, dtype, tmp_path
):
    folder = extracted[dtype]
    total = int(np.load(folder / "attention_mask.npy").sum())
    context = uneven_context(total)
    rows = total // context
    out = tmp_path / "cache"
    manifest = export_saelens(
        folder, out, context_size=context, batch_bytes=FEW_ROWS, max_shard_bytes=FEW_SHARD_ROWS
    )
    columns = rows_of(out)
    assert list(columns) == [module_of(folder, key) for key in KEYS] + ["token_ids"]
    for key in KEYS:
        packed = real_tokens(folder, f"{key}.npy")[: rows * context].reshape(rows, context, -1)
        assert_same_bits(columns[module_of(folder, key)], packed)
    packed_ids = real_tokens(folder, "tokens.npy")[: rows * context].reshape(rows, context)
    assert_same_bits(columns["token_ids"], packed_ids)
    assert (manifest["rows"], manifest["tokens"], manifest["dropped_tokens"]) == (
        rows,
        rows * context,
        total - rows * context,
    )
    assert manifest["dropped_tokens"] > 0
    assert manifest["shards"] > 1 and len(list(out.glob("data-*.arrow"))) == manifest["shards"]
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_the_saelens_directory_loads_as_saelens_loads_its_activation_cache(extracted, tmp_path):
    """What SAELens' ActivationsStore.load_cached_activation_dataset does with the directory."""
    folder = extracted["float16"]
    export("saelens", folder, tmp_path / "cache", hooks=["layer_1_mlp"])
    hook_name = "model.layers.1.mlp"
    cache = datasets.load_from_disk(str(tmp_path / "cache"))
    assert cache.features == datasets.Features(
        {
            hook_name: datasets.Array2D(shape=(CONTEXT, 128), dtype="float16"),
            "token_ids": datasets.Sequence(datasets.Value("int32"), length=CONTEXT),
        }
    )
    cache.set_format(type="torch", columns=[hook_name, "token_ids"], device="cpu", dtype=torch.float32)
    assert cache.features[hook_name].shape == (CONTEXT, 128)
    batch = cache[0:2]
    assert batch[hook_name].shape == (2, CONTEXT, 128) and batch["token_ids"].shape == (2, CONTEXT)
    want = real_tokens(folder, "layer_1_mlp.npy")[: 2 * CONTEXT].astype(np.float32)
    assert np.array_equal(batch[hook_name].reshape(2 * CONTEXT, 128).numpy(), want)


def test_a_seeded_shuffle_is_a_reproducible_permutation_of_the_rows(extracted, tmp_path):
    folder = extracted["float32"]

    def saelens(name, seed=None):
        export_saelens(folder, tmp_path / name, context_size=4, shuffle_seed=seed, batch_bytes=FEW_ROWS)
        return rows_of(tmp_path / name)

    plain, shuffled, again, other = saelens("plain"), saelens("a", 3), saelens("b", 3), saelens("c", 4)
    rows = len(plain["token_ids"])
    permutation = np.random.default_rng(3).permutation(rows)
    assert sorted(permutation) == list(range(rows)) and (permutation != np.arange(rows)).any()
    for name, values in plain.items():
        assert_same_bits(shuffled[name], values[permutation])
        assert_same_bits(again[name], shuffled[name])
    assert not np.array_equal(other["token_ids"], shuffled["token_ids"])
    # The order SAELens' cache runner gives its own cache: Dataset.shuffle(seed=...).
    datasets.load_from_disk(str(tmp_path / "plain")).shuffle(seed=3).save_to_disk(str(tmp_path / "theirs"))
    for name, values in rows_of(tmp_path / "theirs").items():
        assert_same_bits(values, shuffled[name])


@pytest.mark.parametrize("fmt", ["saelens", "tokens"])
def test_a_cancelled_or_failed_export_leaves_no_folder(extracted, fmt, tmp_path):
    folder, out = extracted["float32"], tmp_path / "exports" / fmt
    reports = []
    with pytest.raises(ExportCancelled):
        export(
            fmt,
            folder,
            out,
            on_progress=reports.append,
            should_cancel=lambda: bool(reports),
            batch_bytes=FEW_TOKENS,
        )
    assert len(reports) == 1 and reports[0].tokens_done < reports[0].tokens_total
    assert list((tmp_path / "exports").iterdir()) == []

    def fail(progress):
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        export(fmt, folder, out, on_progress=fail)
    assert list((tmp_path / "exports").iterdir()) == []
    export(fmt, folder, out)  # and then it can be exported there
    assert (out / "manifest.json").is_file()


def test_it_refuses_what_it_cannot_export_and_leaves_nothing(extracted, tmp_path):
    folder = extracted["float32"]
    total = int(np.load(folder / "attention_mask.npy").sum())
    (tmp_path / "taken").mkdir()
    refusals = [
        (("tokens", folder, tmp_path / "taken"), {}, "already exists"),
        (("tokens", folder, tmp_path / "out"), {"hooks": ["layer_5_mlp"]}, "No hook layer_5_mlp"),
        (("saelens", folder, tmp_path / "out"), {"context_size": total + 1}, "not one row"),
        (("saelens", folder, tmp_path / "out"), {"context_size": 0}, "at least 1"),
        (("saelens", folder, tmp_path / "out"), {"shuffle_seed": -1}, "0 or more"),
        (("parquet", folder, tmp_path / "out"), {}, "must be one of saelens, tokens"),
    ]
    for args, options, message in refusals:
        with pytest.raises(ExportError, match=message):
            export(*args, **options)
    running = tmp_path / "running"
    shutil.copytree(folder, running)
    meta = json.loads((running / "metadata.json").read_text())
    (running / "metadata.json").write_text(json.dumps({**meta, "complete": False}))
    with pytest.raises(ExportError, match="does not say the extraction is complete"):
        export("tokens", running, tmp_path / "out")
    (running / "metadata.json").write_text(json.dumps(meta))
    (running / "layer_1_mlp.npy").unlink()
    with pytest.raises(ExportError, match=r"layer_1_mlp\.npy is missing"):
        export("saelens", running, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["running", "taken"]


def anonymous_memory() -> int:
    """Bytes of this process's memory that are not a file's pages: what an export would grow if
    it held what it exports (pages of the memory-mapped files it reads are the kernel's to drop)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("RssAnon:")).split()[1]) * 1024


@pytest.fixture(scope="module")
def large_extraction(tmp_path_factory):
    """An extraction folder as the engine leaves one (real tokens first in each row, padding a
    hole), with 64 MB of real activations: far more than an export may hold at once."""
    folder = tmp_path_factory.mktemp("large-extraction")
    samples, context, hidden = 1024, 64, 256
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, context + 1, samples)
    mask = (np.arange(context) < lengths[:, None]).astype(np.int8)
    np.save(folder / "attention_mask.npy", mask)
    np.save(folder / "tokens.npy", (rng.integers(0, 500, (samples, context)) * mask).astype(np.int32))
    statistics = {}
    for layer in (0, 1):
        key = f"layer_{layer}_residual"
        values = np.lib.format.open_memmap(
            folder / f"{key}.npy", mode="w+", dtype=np.float32, shape=(samples, context, hidden)
        )
        for sample, length in enumerate(lengths):
            values[sample, :length] = rng.standard_normal((length, hidden), dtype=np.float32)
        values.flush()
        del values
        statistics[key] = {
            "layer": layer,
            "hook": "residual",
            "module": f"model.layers.{layer}",
            "file": f"{key}.npy",
            "shape": [samples, context, hidden],
        }
    meta = {"complete": True, "dtype": "float32", "real_tokens": int(lengths.sum()), "statistics": statistics}
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize("fmt", ["saelens", "tokens"])
def test_its_memory_stays_bounded_whatever_the_extractions_size(large_extraction, fmt, tmp_path):
    import datasets.arrow_writer  # noqa: F401 (its import is not the export's memory)

    before = anonymous_memory()
    during = []
    manifest = export(
        fmt,
        large_extraction,
        tmp_path / fmt,
        batch_bytes=2**20,
        on_progress=lambda progress: during.append(anonymous_memory()),
    )
    exported = manifest["tokens"] * 2 * 256 * 4
    assert exported > 60 * 2**20 and len(during) > 60
    assert max(during) - before < 16 * 2**20  # a few batches of 1 MB, never the 64 MB
