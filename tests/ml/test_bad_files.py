"""Files that cannot become a dataset say why, with the line at fault, in bounded memory."""

from __future__ import annotations

import json

import pytest

from models_app.ml import datasets
from models_app.ml.datasets import DatasetError, iter_samples


def read(path, fmt, field="text"):
    return list(iter_samples(path, fmt, field))


def test_a_csv_field_over_128_kib_is_read(tmp_path):
    path = tmp_path / "long.csv"
    long = "word " * 40_000  # 200 KB in one field
    path.write_text(f'text\n"{long}"\nshort\n')
    assert read(path, "csv") == [long, "short"]


def test_a_csv_field_beyond_the_sample_limit_names_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_SAMPLE_CHARS", 1000)
    path = tmp_path / "huge.csv"
    path.write_text('text\nfine\n"' + "x" * 5000 + '"\n')
    with pytest.raises(DatasetError, match="Line 3 of the CSV cannot be read"):
        read(path, "csv")


@pytest.mark.parametrize(
    "fmt, content",
    [
        ("json", b'[{"text": "ok"}, {"text": "\xff\xfe"}]'),
        ("csv", b"text\nok\n\xff\xfe\n"),
        ("jsonl", b'{"text": "ok"}\n{"text": "\xff"}\n'),
    ],
)
def test_invalid_utf8_is_explained(tmp_path, fmt, content):
    path = tmp_path / f"bad.{fmt}"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match="not UTF-8 text"):
        read(path, fmt)


def test_a_single_enormous_line_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_SAMPLE_CHARS", 10_000)
    path = tmp_path / "one-line.txt"
    path.write_text("first line\n" + "y" * 1_000_000)
    with pytest.raises(DatasetError, match="Line 2 is longer than 10,000 characters"):
        read(path, "txt")


def test_a_large_json_item_takes_a_few_decoding_attempts_not_one_per_block(tmp_path, monkeypatch):
    """Linear time: each failed attempt to decode a partly read item reads as much again as is
    pending, so a 12 MB item takes a handful of attempts (one per 64 KiB block would be ~180,
    each re-reading the item from its start: quadratic)."""
    attempts = []

    class Counting(json.JSONDecoder):
        def raw_decode(self, s, idx=0):
            attempts.append(len(s) - idx)
            return super().raw_decode(s, idx)

    monkeypatch.setattr(datasets, "MAX_SAMPLE_CHARS", 1 << 24)
    monkeypatch.setattr(datasets.json, "JSONDecoder", Counting)
    path = tmp_path / "big.json"
    big = "token " * 2_000_000
    path.write_text(json.dumps([{"text": "a"}, {"text": big}, {"text": "b"}]))
    assert read(path, "json") == ["a", big, "b"]
    assert len(attempts) < 20 and sum(attempts) < 4 * len(big)


def test_a_json_item_beyond_the_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_SAMPLE_CHARS", 50_000)
    path = tmp_path / "huge.json"
    path.write_text(json.dumps([{"text": "a"}, {"text": "z" * 300_000}]))
    with pytest.raises(DatasetError, match="Item 2 of the JSON array is larger than 100,000 characters"):
        read(path, "json")


@pytest.mark.parametrize(
    "fmt, content, message",
    [
        ("jsonl", '{"text": "ok"}\n' + "[" * 100_000 + "\n", "Line 2 nests JSON too deeply to read"),
        ("jsonl", '{"text": "ok", "n": ' + "9" * 5000 + "}\n", "Line 1 holds a number too long to read"),
        (
            "json",
            '[{"text": "ok"}, ' + "[" * 100_000 + "]",
            "Item 2 of the JSON array nests JSON too deeply to read",
        ),
        (
            "json",
            '[{"text": "ok", "n": ' + "9" * 5000 + "}]",
            "Item 1 of the JSON array holds a number too long",
        ),
    ],
)
def test_json_python_cannot_read_is_explained(tmp_path, fmt, content, message):
    path = tmp_path / f"odd.{fmt}"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        read(path, fmt)
