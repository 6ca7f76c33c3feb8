"""Folders under data/activations/ that hold an extraction but have no record (a restored or
copied data directory): listing them, importing one as a completed record, deleting one. They
have no owner, so the views let only staff act on them.

A folder's metadata.json is untrusted input. It is read with a size bound (never through a link
or from anything but a regular file), and every value that the record, the pages or the file
views use is checked for its type and range; file names must be plain names inside the folder. A
folder that fails is listed as unusable, with the reason, and can only be deleted."""

from __future__ import annotations

import json
import os
import stat
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeGuard

from django.conf import settings

from ..ml import storage
from ..ml.vocabulary import DTYPES, MAX_BATCH, MAX_TOP_K
from ..ml.vocabulary import HOOK_TYPES as HOOKS
from ..models import Dataset, Extraction, ExtractionStatus, LanguageModel
from ..numbers import whole_number_in

METADATA = "metadata.json"
MAX_METADATA_BYTES = 8 << 20  # a real one is well under 1 MiB even for 80 layers x 3 hooks
MAX_LAYER = 10_000
MAX_FILES = 10_000
MAX_BINS = 10_000
MAX_INT = 2**31 - 1  # what the record's integer columns hold on every database
MAX_BYTES = 2**62
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
MAX_SECONDS = 10 * 365 * 86400


class Unusable(ValueError):
    """Why a found folder cannot be imported, said for the page."""


class Refused(Exception):
    """An import or delete that cannot be done, said for the page."""


@dataclass
class FoundFolder:
    """A folder under ACTIVATIONS_DIR with a metadata.json and no record; `problem` says why it
    cannot be imported ("" when it can), and then `metadata` is empty."""

    name: str
    metadata: dict = field(default_factory=dict)
    problem: str = ""

    @property
    def model_repo(self) -> str:
        return (self.metadata.get("model") or {}).get("repo_id") or ""

    @property
    def dataset_name(self) -> str:
        return (self.metadata.get("dataset") or {}).get("name") or ""

    @property
    def settings(self) -> dict:
        return self.metadata.get("settings") or {}


def found_folders() -> list[FoundFolder]:
    root = Path(settings.ACTIVATIONS_DIR)
    if not root.is_dir():
        return []
    folders = [f for f in sorted(root.iterdir()) if _candidate(f)]
    # Only the folders' own names are looked up (the list page runs this on every view).
    numbers = [n for f in folders if (n := _record_number(f.name)) is not None]
    known = {str(pk) for pk in Extraction.objects.filter(pk__in=numbers).values_list("pk", flat=True)}
    return [_examine(f) for f in folders if f.name not in known]


def _record_number(name: str) -> int | None:
    """The id of the record whose folder this name would be (written as output_dir writes it)."""
    number = whole_number_in(name, low=1)
    return number if number is not None and str(number) == name else None


def _candidate(folder: Path) -> bool:
    """A folder of its own (not a link) that says it holds an extraction; hidden names are
    the studio's own work in progress."""
    return (
        not folder.name.startswith(".")
        and folder.is_dir()
        and not folder.is_symlink()
        and os.path.lexists(folder / METADATA)
    )


def find(name: str) -> FoundFolder | None:
    """The found folder called `name`, or None: not a plain name, gone, or it has a record."""
    if not isinstance(name, str) or not _plain_name(name):
        return None
    folder = Path(settings.ACTIVATIONS_DIR) / name
    if not _candidate(folder):
        return None
    number = _record_number(name)
    if number is not None and Extraction.objects.filter(pk=number).exists():
        return None
    return _examine(folder)


def _examine(folder: Path) -> FoundFolder:
    try:
        metadata = _read(folder / METADATA)
        check_metadata(metadata, folder)
    except Unusable as exc:
        return FoundFolder(folder.name, problem=str(exc))
    return FoundFolder(folder.name, metadata)


def _read(path: Path) -> dict:
    try:  # not through a link, and never waiting on a pipe or a device
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise Unusable(f"metadata.json cannot be opened ({exc.strerror or exc}).") from None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise Unusable("metadata.json is not a regular file.")
        raw = handle.read(MAX_METADATA_BYTES + 1)
    if len(raw) > MAX_METADATA_BYTES:
        raise Unusable(f"metadata.json is larger than {MAX_METADATA_BYTES >> 20} MiB.")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite_float)
    except UnicodeDecodeError:
        raise Unusable("metadata.json is not UTF-8 text.") from None
    except RecursionError:
        raise Unusable("metadata.json is nested too deeply.") from None
    except json.JSONDecodeError as exc:
        raise Unusable(f"metadata.json is not valid JSON (line {exc.lineno}, column {exc.colno}).") from None
    except ValueError as exc:
        raise Unusable(f"metadata.json holds a value that is not allowed: {exc}") from None
    if not isinstance(data, dict):
        raise Unusable("metadata.json is not a JSON object.")
    return data


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:20]} is too large")
    return value


def check_metadata(meta: dict, folder: Path) -> None:
    """Raise Unusable unless `meta` is what a completed extraction writes, as far as the record
    and the pages read it."""
    _require(meta.get("complete") is True, "metadata.json does not say the extraction completed.")
    options = _mapping(meta, "settings", required=True)
    layers, hooks = options.get("layers"), options.get("hooks")
    _require(
        isinstance(layers, list)
        and 0 < len(layers) <= MAX_LAYER
        and all(_is_int(n) and 0 <= n < MAX_LAYER for n in layers),
        f"settings.layers must be a list of layer numbers from 0 to {MAX_LAYER - 1}.",
    )
    _require(
        isinstance(hooks, list)
        and hooks
        and all(h in HOOKS for h in hooks)
        and len(set(hooks)) == len(hooks),
        f"settings.hooks must list hook types among {', '.join(HOOKS)}.",
    )
    _int(options, "batch_size", "settings.", 1, MAX_BATCH, optional=True)
    _int(options, "micro_batch_size", "settings.", 1, MAX_BATCH, optional=True)
    _int(options, "max_samples", "settings.", 1, MAX_INT, optional=True)
    _int(options, "context_length", "settings.", 1, MAX_INT, optional=True)
    _int(options, "top_k", "settings.", 1, MAX_TOP_K, optional=True)
    for key in ("samples", "real_tokens"):
        _int(meta, key, "", 0, MAX_INT if key == "samples" else MAX_BYTES, optional=True)
    _int(meta, "padded_tokens", "", 0, MAX_BYTES, optional=True)
    _int(meta, "context_length", "", 1, MAX_INT, optional=True)
    _int(meta, "hidden_size", "", 1, MAX_INT, optional=True)
    _int(meta, "final_batch_size", "", 1, MAX_BATCH, optional=True)
    _int(meta, "extraction_id", "", 0, 2**63 - 1, optional=True)
    for where, mapping in (("", meta), ("settings.", options)):
        _require(mapping.get("dtype") in (None, *DTYPES), f"{where}dtype must be float16 or float32.")
    _text(meta, "decoder_layers", "", 500)
    _require(isinstance(meta.get("oom_events", []), list), "oom_events must be a list.")
    timings = _mapping(meta, "timings")
    _number(timings, "started", "timings.", EARLIEST, time.time() + 86400)
    _number(timings, "seconds", "timings.", 0, MAX_SECONDS)
    for key in ("tokens_per_second", "samples_per_second"):
        _number(timings, key, "timings.", 0, 1e15)
    size = _mapping(meta, "size")
    for key in ("logical_bytes", "disk_bytes"):
        _int(size, key, "size.", 0, MAX_BYTES, optional=True)
    for key, limit in (("model", 255), ("dataset", 1000)):
        described = _mapping(meta, key)
        for name, value in described.items():
            _require(
                (name == "id" and (value is None or _is_int(value)))
                or value is None
                or (isinstance(value, str) and len(value) <= limit),
                f"{key}.{name} must be text of at most {limit} characters.",
            )
    files = _files(meta, folder)
    _statistics(meta, files)


def _files(meta: dict, folder: Path) -> set[str]:
    files: Any = meta.get("files")  # JSON from the folder, checked below
    _require(
        isinstance(files, list) and len(files) <= MAX_FILES and all(isinstance(n, str) for n in files),
        "files must be a list of file names.",
    )
    for name in files:
        _require(
            _plain_name(name), f"files lists {name[:80]!r}, which is not a plain file name inside the folder."
        )
        _require(not (folder / name).is_symlink(), f"{name} is a link, not a file of the folder.")
    _require(len(set(files)) == len(files), "files lists a name twice.")
    return set(files)


def _statistics(meta: dict, files: set[str]) -> None:
    statistics: Any = meta.get("statistics")  # JSON from the folder, checked below
    _require(
        isinstance(statistics, dict) and len(statistics) <= MAX_LAYER * len(HOOKS),
        "statistics must be an object with one entry per (layer, hook).",
    )
    for key, stats in statistics.items():
        _require(isinstance(stats, dict), f"statistics.{key[:80]} must be an object.")
        where = f"statistics.{key[:80]}."
        _int(stats, "layer", where, 0, MAX_LAYER - 1)
        _require(
            stats.get("hook") in HOOKS and key == f"layer_{stats['layer']}_{stats['hook']}",
            f"{where}hook must be one of {', '.join(HOOKS)}, and the key layer_<layer>_<hook>.",
        )
        _require(
            stats.get("file") == f"{key}.npy" and stats["file"] in files,
            f"{where}file must be {key}.npy, listed in files.",
        )
        shape = stats.get("shape")
        _require(
            shape is None
            or (
                isinstance(shape, list)
                and len(shape) == 3
                and all(_is_int(n) and 0 <= n <= MAX_BYTES for n in shape)
            ),
            f"{where}shape must be three sizes.",
        )
        for name in ("file_size", "disk_size", "tokens"):
            _int(stats, name, where, 0, MAX_BYTES, optional=True)
        for name in ("mean", "mean_abs", "std", "min", "max", "sparsity_percent", "l2_norm_mean"):
            _number(stats, name, where)
        _text(stats, "module", where, 500)
        _histogram(stats.get("histogram"), where)


def _histogram(histogram: Any, where: str) -> None:
    if histogram is None:
        return
    _require(isinstance(histogram, dict), f"{where}histogram must be an object.")
    counts, edges = histogram.get("counts"), histogram.get("edges")
    _require(
        isinstance(counts, list)
        and len(counts) <= MAX_BINS
        and all(_is_int(c) and 0 <= c <= MAX_BYTES for c in counts)
        and isinstance(edges, list)
        and len(edges) == len(counts) + 1
        and all(_is_number(e) for e in edges),
        f"{where}histogram must have counts and one more edge than counts.",
    )
    for name in ("below", "above", "nonfinite"):
        _int(histogram, name, f"{where}histogram.", 0, MAX_BYTES, optional=True)


def _require(condition: Any, reason: str) -> None:
    if not condition:
        raise Unusable(reason)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(mapping: dict, key: str, where: str, low: int, high: int, optional: bool = False) -> None:
    value = mapping.get(key)
    if value is None and optional:
        return
    _require(
        _is_int(value) and low <= value <= high,
        f"{where}{key} must be a whole number from {low:,} to {high:,}.",
    )


def _number(mapping: dict, key: str, where: str, low: float | None = None, high: float | None = None) -> None:
    """None or a number (finite: the parser refuses the others) within [low, high] if given."""
    value = mapping.get(key)
    if low is None or high is None:
        _require(value is None or _is_number(value), f"{where}{key} must be a number.")
    else:
        _require(
            value is None or (_is_number(value) and low <= value <= high),
            f"{where}{key} must be a number from {low:,.0f} to {high:,.0f}.",
        )


def _text(mapping: dict, key: str, where: str, limit: int) -> None:
    value = mapping.get(key)
    _require(
        value is None or (isinstance(value, str) and len(value) <= limit),
        f"{where}{key} must be text of at most {limit} characters.",
    )


def _mapping(mapping: dict, key: str, required: bool = False) -> dict:
    value: Any = mapping.get(key)
    if value is None and not required:
        return {}
    _require(isinstance(value, dict), f"{key} must be an object.")
    return value


def _plain_name(name: str) -> bool:
    return (
        0 < len(name) <= 255
        and name not in (".", "..")
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
    )


def move_aside(folder: Path) -> None:
    """A folder already at a new record's path belongs to no record (a copied or restored data
    directory): keep it, under a name that stays listed for import, rather than mix files."""
    if folder.exists():
        os.replace(folder, folder.with_name(f"{folder.name}-found-{int(time.time())}"))


def import_folder(name: str, model: LanguageModel, dataset: Dataset, owner=None) -> Extraction:
    """Make a found folder a completed record of `model` on `dataset`: the folder moves to the
    new record's path, its metadata.json kept as it is.

    No file is touched inside a transaction, and the order survives a crash at any point: the
    folder is first renamed to a claimed name (a second import of it finds nothing, and the new
    record's path, which may be this very name, is free), which is still listed and importable;
    the record is created in its own short transaction; then the folder moves into place. A
    crash between the last two leaves the folder importable and a record whose files are missing
    (its page says so; deleting it is safe)."""
    found = find(name)
    if found is None:
        raise Refused(f"No importable folder named {name[:80]!r}: it is gone or already has a record.")
    if found.problem:
        raise Refused(f"{name} cannot be imported: {found.problem}")
    root = Path(settings.ACTIVATIONS_DIR)
    claimed = root / f"{name}-importing-{uuid.uuid4().hex[:8]}"
    try:
        os.replace(root / name, claimed)
    except OSError as exc:
        raise Refused(f"Could not import {name}: {exc.strerror or exc}.") from None
    try:
        record = Extraction.objects.create(
            **record_fields(found.metadata),
            model=model,
            dataset=dataset,
            owner=owner,
            size_bytes=storage.disk_usage(claimed),
        )
    except BaseException:
        with suppress(OSError):  # else it stays importable under its claimed name
            os.replace(claimed, root / name)
        raise
    try:
        move_aside(record.output_dir)
        os.replace(claimed, record.output_dir)
    except OSError as exc:
        Extraction.objects.filter(pk=record.pk).delete()
        with suppress(OSError):
            os.replace(claimed, root / name)
        raise Refused(f"Could not import {name}: {exc.strerror or exc}.") from None
    return record


def delete_folder(name: str) -> int:
    """Remove a found folder (usable or not); bytes freed."""
    found = find(name)
    if found is None:
        raise Refused(f"No folder found on disk named {name[:80]!r}: it is gone or already has a record.")
    return storage.remove_tree(Path(settings.ACTIVATIONS_DIR) / found.name)


def record_fields(meta: dict) -> dict:
    """A completed record's fields from a checked metadata.json (see check_metadata)."""
    options, timings = meta.get("settings") or {}, meta.get("timings") or {}
    started = timings.get("started")
    started_at = datetime.fromtimestamp(started, tz=UTC) if started is not None else None
    seconds = timings.get("seconds")
    completed_at = (
        started_at + timedelta(seconds=seconds)
        if started_at and seconds is not None
        else datetime.now(tz=UTC)
    )
    return {
        "layers": options["layers"],
        "hooks": options["hooks"],
        "batch_size": options.get("batch_size") or 8,
        "micro_batch_size": options.get("micro_batch_size"),
        "max_samples": options.get("max_samples"),
        "context_length": meta.get("context_length") or options.get("context_length") or 128,
        "top_k": options.get("top_k") or 10,
        "dtype": meta.get("dtype") or options.get("dtype") or "float16",
        "status": ExtractionStatus.COMPLETED,
        "progress": 100.0,
        "samples_done": meta.get("samples") or 0,
        "samples_total": meta.get("samples") or 0,
        "tokens_per_second": timings.get("tokens_per_second") or 0.0,
        "metadata": meta,
        "started_at": started_at,
        "completed_at": completed_at,
    }
