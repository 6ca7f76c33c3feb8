"""The "saelens" export: a Hugging Face `datasets` directory that SAELens 6 trains from as a
pre-computed activation cache (`use_cached_activations=True`, `cached_activations_path=DIR`).

Its columns are the ones SAELens' CacheActivationsRunner writes and its ActivationsStore reads:
one per hook, named after the hook's module path in the model (`model.layers.3.mlp`, which is
SAELens' `hook_name` for a Hugging Face model), of feature `Array2D((context_size, d_in), dtype)`,
and `token_ids`, `Sequence(Value("int32"), length=context_size)`. Rows are packed real tokens:
the samples' real tokens in dataset order, concatenated and cut into rows of `context_size`, so
padding is never exported; a last partial row is dropped and counted in the manifest.

The shards are written with the `datasets` library's own ArrowWriter, a batch of rows at a time,
into the layout `Dataset.save_to_disk` leaves (data-NNNNN-of-NNNNN.arrow, dataset_info.json,
state.json), whose state.json is written here as SAELens' runner writes its own when it joins its
shards. Building a `Dataset` first (from_generator, then save_to_disk) would write every
activation twice: to a cache, then to the directory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .common import (
    BATCH_BYTES,
    ExportError,
    ExportProgress,
    Meter,
    now,
    refuse_existing,
    write_manifest,
    writing,
)
from .source import Source

MAX_SHARD_BYTES = 2 * 10**9  # one .arrow file, as save_to_disk(max_shard_size="2GB")
TOKEN_IDS = "token_ids"
# An Array2D column is a list of lists whose offsets are int32: a batch of rows (written as one
# Arrow array) holds fewer values than that.
MAX_BATCH_VALUES = 2**31 - 1


def export_saelens(
    folder: Path,
    out: Path,
    *,
    hooks: Sequence[str] | None = None,
    context_size: int | None = None,
    shuffle_seed: int | None = None,
    on_progress: Callable[[ExportProgress], None] = lambda p: None,
    should_cancel: Callable[[], bool] = lambda: False,
    batch_bytes: int = BATCH_BYTES,
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> dict[str, Any]:
    """Write the export into `out` (which must not exist); returns its manifest. `context_size`:
    tokens per row (default: the extraction's context length). `shuffle_seed`: rows in the order
    `Dataset.shuffle(seed=shuffle_seed)` would give them, as SAELens' runner shuffles its cache."""
    import datasets as hf_datasets  # here: the "tokens" export and the terminal start without it

    refuse_existing(out)
    source = Source(folder, hooks)
    context = int(source.tokens.shape[1]) if context_size is None else context_size
    _check(source, context, shuffle_seed)
    rows = source.total // context
    features = hf_datasets.Features(
        {
            **{
                h.module: hf_datasets.Array2D(shape=(context, h.hidden_size), dtype=source.dtype.name)
                for h in source.hooks
            },
            TOKEN_IDS: hf_datasets.Sequence(hf_datasets.Value("int32"), length=context),
        }
    )
    # Dataset.shuffle(seed) draws numpy's default_rng(seed).permutation(rows): the same order.
    order = np.arange(rows) if shuffle_seed is None else np.random.default_rng(shuffle_seed).permutation(rows)
    row_bytes = context * (sum(h.hidden_size for h in source.hooks) * source.dtype.itemsize + 4)
    widest = context * max(h.hidden_size for h in source.hooks)
    rows_per_batch = max(1, min(batch_bytes // row_bytes, MAX_BATCH_VALUES // widest))
    rows_per_shard = max(1, max_shard_bytes // row_bytes)
    shards = math.ceil(rows / rows_per_shard)
    names = [f"data-{index:05d}-of-{shards:05d}.arrow" for index in range(shards)]
    meter = Meter(rows * context, on_progress, should_cancel)
    with writing(out) as partial:
        for index, name in enumerate(names):
            part = order[index * rows_per_shard : (index + 1) * rows_per_shard]
            _write_shard(partial / name, features, source, part, context, rows_per_batch, meter)
        manifest = {
            "format": "saelens",
            **source.provenance(),
            "context_size": context,
            "rows": rows,
            "tokens": rows * context,
            "dropped_tokens": source.total - rows * context,
            "shuffle_seed": shuffle_seed,
            "columns": {h.key: h.module for h in source.hooks} | {TOKEN_IDS: TOKEN_IDS},
            "shards": shards,
            "exported_at": now(),
        }
        _write_dataset_files(partial, features, names, manifest)
        write_manifest(partial, manifest)
    return manifest


def check_saelens(
    folder: Path, hooks: Sequence[str] | None, context_size: int | None, shuffle_seed: int | None
) -> None:
    """What export_saelens would refuse, said before any file is written (a form's check)."""
    source = Source(folder, hooks)
    _check(source, int(source.tokens.shape[1]) if context_size is None else context_size, shuffle_seed)


def _check(source: Source, context: int, shuffle_seed: int | None) -> None:
    if context < 1:
        raise ExportError("The context size must be at least 1.", "context_size")
    if source.total < context:
        raise ExportError(
            f"The extraction holds {source.total} real tokens: not one row of {context}. "
            "Choose a smaller context size.",
            "context_size",
        )
    if context * max(h.hidden_size for h in source.hooks) > MAX_BATCH_VALUES:
        raise ExportError(
            f"A row of {context} tokens holds more values than one Arrow list can.", "context_size"
        )
    if shuffle_seed is not None and shuffle_seed < 0:
        raise ExportError("The shuffle seed must be 0 or more.", "shuffle_seed")
    modules = [h.module for h in source.hooks]
    if len(set(modules)) < len(modules) or TOKEN_IDS in modules:
        raise ExportError(f"The hooks' module paths cannot all be columns: {', '.join(modules)}.", "hooks")


def _write_shard(
    path: Path,
    features: Any,
    source: Source,
    rows: np.ndarray,
    context: int,
    rows_per_batch: int,
    meter: Meter,
) -> None:
    from datasets.arrow_writer import ArrowWriter

    writer = ArrowWriter(features=features, path=str(path), writer_batch_size=rows_per_batch)
    try:
        for first in range(0, len(rows), rows_per_batch):
            meter.check()
            batch = rows[first : first + rows_per_batch]
            tokens = len(batch) * context
            flat: dict[str, np.ndarray] = {
                h.key: np.empty((tokens, h.hidden_size), source.dtype) for h in source.hooks
            }
            flat[TOKEN_IDS] = np.empty(tokens, np.int32)
            for at, row, count in _runs(batch):
                span = slice(at * context, (at + count) * context)
                source.fill(row * context, (row + count) * context, {k: v[span] for k, v in flat.items()})
            columns: dict[str, np.ndarray] = {
                h.module: flat[h.key].reshape(len(batch), context, h.hidden_size) for h in source.hooks
            }
            columns[TOKEN_IDS] = flat[TOKEN_IDS].reshape(len(batch), context)
            writer.write_batch(columns)
            meter.add(tokens, sum(values.nbytes for values in flat.values()))
        writer.finalize()
    finally:
        writer.close()


def _runs(rows: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """(index in `rows`, first row, count) of each run of consecutive rows: unshuffled, a batch
    is one run and is copied as one span."""
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(rows)]])
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        yield start, int(rows[start]), stop - start


def _write_dataset_files(folder: Path, features: Any, names: list[str], manifest: dict[str, Any]) -> None:
    """dataset_info.json and state.json, as Dataset.save_to_disk writes them: what
    `datasets.load_from_disk` reads to open the shards."""
    import datasets as hf_datasets
    from datasets.fingerprint import Hasher

    model, dataset = manifest["model"], manifest["dataset"] or {}
    hf_datasets.DatasetInfo(
        description=(
            f"Activations of {model['repo_id'] or 'a model'} on {dataset.get('name') or 'a dataset'},"
            f" packed in rows of {manifest['context_size']} real tokens: a SAELens activation cache"
            " exported by miStudio (see manifest.json)."
        ),
        features=features,
    ).write_to_directory(str(folder))
    identity = {key: value for key, value in manifest.items() if key != "exported_at"}
    state = {
        "_data_files": [{"filename": name} for name in names],
        # Same export of the same extraction, same fingerprint: what `datasets` keys its caches on.
        "_fingerprint": Hasher.hash(json.dumps(identity, sort_keys=True)),
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": None,
    }
    (folder / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
