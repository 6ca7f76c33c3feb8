"""Text datasets: read an uploaded or downloaded file sample by sample, validate it, and store it
in one normalized form the extraction engine reads with O(1) random access and bounded memory:

    datasets/{id}/texts.jsonl   one JSON string per line
    datasets/{id}/offsets.npy   int64 byte offset of each line

Supported inputs: .txt (one sample per line), .jsonl / .json (a named text field), .csv (a named
column), .parquet (a named column). Nothing here reads a whole file into memory.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..formatting import bytesize
from .errors import UserError

FORMATS = ("txt", "jsonl", "json", "csv", "parquet")
TEXTS, OFFSETS = "texts.jsonl", "offsets.npy"
RAW_OFFSETS = "offsets.int64"  # written while reading, then given its .npy header
OFFSETS_PER_WRITE = 1 << 16
PREVIEW_SAMPLES = 5
# The longest sample read (in characters): far beyond any model's context, and it bounds the
# memory a file with one enormous line or JSON item can take while it is read.
MAX_SAMPLE_CHARS = 1 << 22
# Text a single file may hold once decompressed (Parquet), unless the caller says otherwise, and
# at most this many times its own size: text compresses a few times over, and a file that claims
# more is a few bytes standing for gigabytes (one value repeated on every row).
MAX_TEXT_BYTES = 16 << 30
MAX_EXPANSION = 64
# One row group's text column, decompressed: the most one Parquet read may take at once.
MAX_ROW_GROUP_BYTES = 256 << 20
PARQUET_BATCH_ROWS = 64
PARQUET_PIECE_BYTES = 16 << 20  # the Python strings made at once from a batch


class DatasetError(UserError):
    """A file that cannot become a dataset, explained for the user. `field` names the argument the
    error is about when it is not the file itself: "text_field" when the file lacks that field or
    column, or holds something other than text there (forms name their field the same)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


TEXT_FIELD = "text_field"


@dataclass
class StoredDataset:
    folder: Path
    samples: int
    size_bytes: int
    preview: list[str]


def room_refusal(download_bytes: int, free_bytes: int) -> str | None:
    """Why files of this size cannot be added here, if they cannot: the files and the samples
    read from them (about as much again) must fit on the disk."""
    if 2 * download_bytes <= free_bytes:
        return None
    return (
        f"The files take {bytesize(download_bytes)} and the samples read from them about as much "
        f"again; the disk has {bytesize(free_bytes)} free."
    )


def detect_format(filename: str) -> str:
    suffix = Path(filename).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise DatasetError(f"Unsupported file type “.{suffix}”: use .txt, .jsonl, .json, .csv or .parquet.")
    return suffix


def _looks_binary(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(8192)
    return b"\x00" in head


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    number = 0
    with open(path, encoding="utf-8", newline="") as handle:
        try:
            while True:
                line = handle.readline(MAX_SAMPLE_CHARS + 1)
                if not line:
                    return
                number += 1
                if len(line) > MAX_SAMPLE_CHARS:
                    raise DatasetError(
                        f"Line {number} is longer than {MAX_SAMPLE_CHARS:,} characters: "
                        "split it into samples, one per line."
                    )
                yield number, line.rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise DatasetError(f"The file is not UTF-8 text (an invalid byte in line {number + 1}).") from exc


def _field(record: object, field: str, where: str) -> str:
    if not isinstance(record, dict):
        raise DatasetError(f"{where} is not a JSON object.")
    if field not in record:
        keys = ", ".join(sorted(record)[:8])
        raise DatasetError(f"{where} has no field “{field}” (it has: {keys}).", TEXT_FIELD)
    value = record[field]
    if not isinstance(value, str):
        raise DatasetError(f"{where}: field “{field}” is not text.", TEXT_FIELD)
    return value


def iter_samples(
    path: Path, fmt: str, text_field: str = "text", max_text_bytes: int = MAX_TEXT_BYTES
) -> Iterator[str]:
    """Yield the samples of a file, raising DatasetError with the line or row at fault.
    `max_text_bytes` bounds what a compressed file may hold (text files hold their size)."""
    path = Path(path)
    if fmt != "parquet" and _looks_binary(path):
        raise DatasetError("The file looks binary, not text.")
    if fmt == "txt":
        for _number, line in _text_lines(path):
            if line.strip():
                yield line
    elif fmt == "jsonl":
        for number, line in _text_lines(path):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"Line {number} is not valid JSON ({exc.msg}).") from exc
            except (RecursionError, ValueError) as exc:
                raise DatasetError(f"Line {number} {_unreadable(exc)}.") from exc
            yield _field(record, text_field, f"Line {number}")
    elif fmt == "json":
        yield from _json_array(path, text_field)
    elif fmt == "csv":
        yield from _csv_rows(path, text_field)
    elif fmt == "parquet":
        yield from _parquet_rows(path, text_field, max_text_bytes)


def _json_array(path: Path, text_field: str) -> Iterator[str]:
    """A .json file: an array of objects, or JSON lines saved with a .json name."""
    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.read(1)
            while first and first.isspace():
                first = handle.read(1)
        if first != "[":
            yield from iter_samples(path, "jsonl", text_field)
            return
        yield from _json_items(path, text_field)
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"The file is not UTF-8 text (an invalid byte near byte {exc.start:,} of a block)."
        ) from exc


def _json_items(path: Path, text_field: str) -> Iterator[str]:
    # Arrays are decoded object by object so a large file never sits in memory whole.
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8") as handle:
        buffer, index, position = handle.read(1 << 16), 0, 0
        position = buffer.index("[") + 1
        while True:
            while True:
                while position < len(buffer) and buffer[position] in " \t\r\n,":
                    position += 1
                if position < len(buffer):
                    break
                more = handle.read(1 << 16)
                if not more:
                    raise DatasetError("The JSON array is not closed with ‘]’.")
                buffer, position = buffer[position:] + more, 0
            if buffer[position] == "]":
                return
            while True:
                try:
                    record, end = decoder.raw_decode(buffer, position)
                    break
                except json.JSONDecodeError as exc:
                    if len(buffer) - position > 2 * MAX_SAMPLE_CHARS:
                        raise DatasetError(
                            f"Item {index + 1} of the JSON array is larger than "
                            f"{2 * MAX_SAMPLE_CHARS:,} characters."
                        ) from exc
                    # Read as much again as is pending: an item takes a few decoding attempts,
                    # not one per 64 KiB (which made a large item quadratic).
                    more = handle.read(max(1 << 16, len(buffer) - position))
                    if not more:
                        raise DatasetError(
                            f"Item {index + 1} of the JSON array is not valid JSON ({exc.msg})."
                        ) from exc
                    buffer, position = buffer[position:] + more, 0
                except (RecursionError, ValueError) as exc:
                    raise DatasetError(f"Item {index + 1} of the JSON array {_unreadable(exc)}.") from exc
            index += 1
            yield _field(record, text_field, f"Item {index}")
            buffer, position = buffer[end:], 0


def _unreadable(exc: BaseException) -> str:
    """What Python's JSON reader refuses beyond JSON's own syntax: nesting deeper than the
    interpreter's stack, and integers longer than it converts (4,300 digits)."""
    return (
        "nests JSON too deeply to read"
        if isinstance(exc, RecursionError)
        else "holds a number too long to read"
    )


def _csv_rows(path: Path, column: str) -> Iterator[str]:
    csv.field_size_limit(MAX_SAMPLE_CHARS)  # the standard 128 KiB would refuse long documents
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            if not reader.fieldnames or column not in reader.fieldnames:
                names = ", ".join(reader.fieldnames or [])
                raise DatasetError(
                    f"The CSV has no column “{column}” (it has: {names or 'no header'}).", TEXT_FIELD
                )
            for row in reader:
                value = row.get(column)
                if value and value.strip():
                    yield value
        except csv.Error as exc:
            raise DatasetError(f"Line {reader.line_num + 1} of the CSV cannot be read ({exc}).") from exc
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"The file is not UTF-8 text (an invalid byte after line {reader.line_num})."
            ) from exc


def _parquet_rows(path: Path, column: str, max_text_bytes: int) -> Iterator[str]:
    """A Parquet column, read a few rows at a time. A few compressed bytes can stand for gigabytes
    of text (zstd, and a dictionary that repeats one value on every row), so what a read would
    take is judged before it is taken: each row group's column from the file's metadata, each
    sample's length from Arrow's arrays before it becomes a Python string, and the file's text
    in all against `max_text_bytes` and MAX_EXPANSION times the file's size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:
        raise DatasetError(f"The file is not a readable Parquet file ({exc}).") from exc
    names = parquet.schema_arrow.names
    if column not in names:
        raise DatasetError(
            f"The Parquet file has no column “{column}” (it has: {', '.join(names)}).", TEXT_FIELD
        )
    kind = parquet.schema_arrow.field(column).type
    kind = kind.value_type if pa.types.is_dictionary(kind) else kind
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DatasetError(f"The Parquet column “{column}” holds {kind}, not text.", TEXT_FIELD)
    _check_row_groups(parquet, column)
    # Dictionary pages stay dictionaries (a value repeated a million times is held once), and a
    # column chunk streams from disk instead of being read in one piece.
    parquet = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False, read_dictionary=[column])
    row, total, expansion_cap = 0, 0, MAX_EXPANSION * Path(path).stat().st_size
    for batch in parquet.iter_batches(columns=[column], batch_size=PARQUET_BATCH_ROWS):
        values = batch.column(0)
        chars, sizes = _lengths(values)
        too_long = np.flatnonzero(chars > MAX_SAMPLE_CHARS)
        if too_long.size:
            raise DatasetError(
                f"Row {row + int(too_long[0]) + 1:,} of the Parquet file is longer than "
                f"{MAX_SAMPLE_CHARS:,} characters."
            )
        total += int(sizes.sum())
        if total > max_text_bytes:
            raise DatasetError(
                f"The Parquet file holds more than {bytesize(max_text_bytes)} of text "
                "once decompressed: split it into smaller files."
            )
        if total > expansion_cap:
            raise DatasetError(
                f"The Parquet file holds over {MAX_EXPANSION} times its own size in text "
                "once decompressed, more than real text compresses: it is refused."
            )
        for start, stop in _pieces(sizes, PARQUET_PIECE_BYTES):
            for value in values.slice(start, stop - start).to_pylist():
                if isinstance(value, str) and value.strip():
                    yield value
        row += len(values)


def _check_row_groups(parquet, column: str) -> None:
    schema = parquet.metadata.schema
    leaf = next(i for i in range(len(schema)) if schema.column(i).path == column)
    for group in range(parquet.metadata.num_row_groups):
        size = parquet.metadata.row_group(group).column(leaf).total_uncompressed_size
        if size > MAX_ROW_GROUP_BYTES:
            raise DatasetError(
                f"Row group {group + 1} of the Parquet file holds {size / 1e6:,.0f} MB of “{column}” once "
                f"decompressed; the studio reads at most {MAX_ROW_GROUP_BYTES / 1e6:,.0f} MB at a time: "
                "write it with smaller row groups (pyarrow: row_group_size=10_000)."
            )


def _lengths(values) -> tuple[np.ndarray, np.ndarray]:
    """Characters and UTF-8 bytes of each value (0 for a null), from Arrow's buffers."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def measure(function) -> np.ndarray:
        if pa.types.is_dictionary(values.type):  # measured once per distinct value
            lengths = pc.take(function(values.dictionary), values.indices)
        else:
            lengths = function(values)
        return pc.fill_null(lengths, 0).to_numpy(zero_copy_only=False).astype(np.int64)

    return measure(pc.utf8_length), measure(pc.binary_length)


def _pieces(sizes: np.ndarray, budget: int) -> Iterator[tuple[int, int]]:
    """Consecutive ranges of rows holding about `budget` bytes each (one row if it is larger)."""
    start, held = 0, 0
    for index, size in enumerate(sizes.tolist()):
        if index > start and held + size > budget:
            yield start, index
            start, held = index, 0
        held += size
    if start < len(sizes):
        yield start, len(sizes)


def store(samples: Iterator[str], folder: Path) -> StoredDataset:
    """Write samples in the normalized form (under a temporary folder, renamed when complete).
    Offsets go to disk as they are made, so memory stays the same whatever the line count."""
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    preview: list[str] = []
    try:
        with open(partial / TEXTS, "wb") as out, open(partial / RAW_OFFSETS, "wb") as offsets:
            pending = array("q")
            for text in samples:
                pending.append(out.tell())
                out.write(json.dumps(text, ensure_ascii=False).encode() + b"\n")
                if len(preview) < PREVIEW_SAMPLES:
                    preview.append(text[:500])
                if len(pending) >= OFFSETS_PER_WRITE:
                    pending.tofile(offsets)
                    del pending[:]
            pending.tofile(offsets)
        count = (partial / RAW_OFFSETS).stat().st_size // 8
        if not count:
            raise DatasetError("The file has no samples.")
        _as_npy(partial / RAW_OFFSETS, partial / OFFSETS, count)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return StoredDataset(
        folder=folder, samples=count, size_bytes=(folder / TEXTS).stat().st_size, preview=preview
    )


def _as_npy(raw: Path, target: Path, count: int) -> None:
    """int64 values written back to back become a .npy file, copied through a small buffer."""
    with open(target, "wb") as out, open(raw, "rb") as values:
        np.lib.format.write_array_header_1_0(
            out, {"descr": np.dtype(np.int64).str, "fortran_order": False, "shape": (count,)}
        )
        shutil.copyfileobj(values, out, 1 << 20)
    raw.unlink()


class TextDataset(Sequence):
    """The stored samples as a read-only sequence of strings (slices too), read on demand."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.offsets = np.load(self.folder / OFFSETS, mmap_mode="r")
        self._handle: io.BufferedReader | None = None

    def __len__(self) -> int:
        return len(self.offsets)

    def _at(self, index: int) -> io.BufferedReader:
        """The texts file, positioned at a sample. Opened once and kept: an extraction reads
        thousands of samples, one at a time."""
        if self._handle is None:
            self._handle = open(self.folder / TEXTS, "rb")  # noqa: SIM115
        self._handle.seek(int(self.offsets[index]))
        return self._handle

    def _read(self, index: int) -> str:
        return json.loads(self._at(index).readline())

    def prefix(self, index: int, chars: int) -> str:
        """The first `chars` characters of a sample, reading a bounded number of bytes however
        long the sample is (an estimate needs only what fits in a context)."""
        line = self._at(index).readline(4 * chars + 8).decode("utf-8", "ignore")
        if line.endswith("\n"):  # the whole sample fitted
            return json.loads(line)[:chars]
        # A cut line is an unclosed JSON string, perhaps cut inside an escape (at most 6
        # characters, \uXXXX): close it, giving back a character at a time until it parses.
        for cut in range(len(line), max(len(line) - 7, 0), -1):
            try:
                return json.loads(line[:cut] + '"')[:chars]
            except json.JSONDecodeError:
                continue
        return ""

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._read(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._read(index)
