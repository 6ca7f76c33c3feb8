"""Parquet files whose few compressed bytes stand for gigabytes of text are judged before the text
is made: each read is measured in a fresh process, by its peak resident memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models_app.ml import datasets
from models_app.ml.datasets import DatasetError, iter_samples

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20


def read_in_a_fresh_process(path: Path, **options) -> tuple[str, float]:
    """The outcome of reading `path` to the end ("N samples" or the DatasetError's message) and
    the reading process's peak resident memory in MiB (VmHWM: unlike ru_maxrss, it does not
    carry over the test process's own peak through fork and exec)."""
    script = textwrap.dedent(f"""
        import json, re
        from models_app.ml.datasets import DatasetError, iter_samples
        try:
            count = sum(1 for _ in iter_samples({str(path)!r}, 'parquet', 'text', **{options!r}))
            outcome = f"{{count}} samples"
        except DatasetError as exc:
            outcome = str(exc)
        peak_kib = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
        print(json.dumps([outcome, peak_kib / 1024]))
    """)
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return tuple(json.loads(run.stdout.strip().splitlines()[-1]))


def write(path: Path, texts: list, **options) -> Path:
    pq.write_table(pa.table({"text": texts}), path, compression="zstd", compression_level=22, **options)
    return path


@pytest.mark.slow
def test_it_refuses_the_704_byte_dictionary_bomb_without_expanding_it(tmp_path):
    bomb = write(tmp_path / "bomb.parquet", ["a" * (8 * MIB)] * 64)  # 512 MiB of text
    assert bomb.stat().st_size < 1000
    outcome, peak = read_in_a_fresh_process(bomb)
    assert outcome == "Row 1 of the Parquet file is longer than 4,194,304 characters."
    assert peak < 300


@pytest.mark.slow
def test_it_refuses_a_row_group_too_large_to_read_at_once(tmp_path):
    bomb = write(tmp_path / "plain.parquet", ["b" * (8 * MIB)] * 64, use_dictionary=False)
    outcome, peak = read_in_a_fresh_process(bomb)
    assert outcome.startswith("Row group 1 of the Parquet file holds 537 MB of “text” once decompressed")
    assert peak < 300


@pytest.mark.slow
def test_it_stops_at_many_times_its_own_size_in_text(tmp_path):
    # 600 rows just under the sample limit, one value repeated: 2.4 GB of text from a few KB, in
    # row groups small enough to read and under the 16 GB any file may hold.
    many = write(tmp_path / "many.parquet", ["c" * (4 * MIB - 1)] * 600, row_group_size=50)
    outcome, peak = read_in_a_fresh_process(many)
    assert outcome == (
        "The Parquet file holds over 64 times its own size in text once decompressed, "
        "more than real text compresses: it is refused."
    )
    assert peak < 300


@pytest.mark.slow
def test_it_stops_at_the_text_a_file_may_hold(tmp_path):
    import random

    rng = random.Random(7)
    texts = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz ", k=10_000)) for _ in range(300)]  # 3 MB
    path = write(tmp_path / "random.parquet", texts, use_dictionary=False)
    with pytest.raises(DatasetError, match=r"holds more than 1\.0 MB of text once decompressed: split it"):
        list(iter_samples(path, "parquet", "text", max_text_bytes=1_000_000))
    assert len(list(iter_samples(path, "parquet", "text"))) == 300  # within 64 times its size


def test_it_reads_repeated_values_and_nulls_in_order_across_row_groups(tmp_path):
    texts = [None if i % 7 == 0 else f"sample {i % 5}" for i in range(5000)]
    path = write(tmp_path / "repeats.parquet", texts, row_group_size=700)
    assert list(iter_samples(path, "parquet", "text")) == [t for t in texts if t]


def test_it_names_the_row_of_a_sample_over_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_SAMPLE_CHARS", 100)
    path = write(tmp_path / "long.parquet", ["short"] * 300 + ["é" * 101], use_dictionary=False)
    with pytest.raises(DatasetError, match="Row 301 of the Parquet file is longer than 100 characters"):
        list(iter_samples(path, "parquet", "text"))


def test_it_refuses_a_column_that_is_not_text(tmp_path):
    path = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"text": [1, 2, 3]}), path)
    with pytest.raises(DatasetError, match="The Parquet column “text” holds int64, not text"):
        list(iter_samples(path, "parquet", "text"))


@pytest.mark.slow
def test_it_keeps_offsets_out_of_memory_whatever_the_line_count(tmp_path):
    import tracemalloc

    tracemalloc.start()
    stored = datasets.store(iter("a" * 1_000_000), tmp_path / "stored")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert stored.samples == 1_000_000 and datasets.TextDataset(stored.folder)[999_999] == "a"
    assert peak < 4 * MIB  # a list of a million offsets alone takes 36 MB
