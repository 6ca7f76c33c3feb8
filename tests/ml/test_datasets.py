from __future__ import annotations

import json
import re

import pytest

from models_app.ml import datasets
from models_app.ml.datasets import DatasetError, TextDataset


def ingest(tmp_path, name: str, content: bytes | str, field: str = "text") -> datasets.StoredDataset:
    source = tmp_path / name
    source.write_bytes(content.encode() if isinstance(content, str) else content)
    fmt = datasets.detect_format(name)
    return datasets.store(datasets.iter_samples(source, fmt, field), tmp_path / "stored")


def test_it_reads_every_format(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    expected = ["first sample", "second, with a comma", "third \u00e9t\u00e9"]
    cases = {
        "a.txt": "first sample\n\nsecond, with a comma\nthird \u00e9t\u00e9\n",
        "a.jsonl": "\n".join(json.dumps({"body": t, "id": i}) for i, t in enumerate(expected)),
        "a.json": json.dumps([{"body": t} for t in expected]),
        "a.csv": 'id,body\n1,first sample\n2,"second, with a comma"\n3,third \u00e9t\u00e9\n',
    }
    for name, content in cases.items():
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        stored = ingest(folder, name, content, field="body")
        assert list(TextDataset(stored.folder)) == expected, name
        assert stored.samples == 3 and stored.preview == expected
    folder = tmp_path / "pq"
    folder.mkdir()
    pq.write_table(pa.table({"body": expected, "n": [1, 2, 3]}), folder / "a.parquet")
    stored = datasets.store(datasets.iter_samples(folder / "a.parquet", "parquet", "body"), folder / "stored")
    assert list(TextDataset(stored.folder)) == expected


def test_a_large_json_array_streams_across_reads(tmp_path):
    items = [{"text": f"sample {i} " + "x" * (i % 300)} for i in range(2000)]
    stored = ingest(tmp_path, "big.json", json.dumps(items))
    data = TextDataset(stored.folder)
    assert len(data) == 2000 and data[1999] == items[1999]["text"] and data[-1] == data[1999]
    assert data[10:13] == [items[i]["text"] for i in (10, 11, 12)]


@pytest.mark.parametrize(
    "name, content, field, message",
    [
        ("bad.jsonl", '{"text": "ok"}\n{"text": "broken\n', "text", "Line 2 is not valid JSON"),
        ("bad.jsonl", '{"text": "ok"}\n{"body": "x"}\n', "text", "Line 2 has no field “text” (it has: body)"),
        ("bad.json", '[{"text": "a"}, {"text": 5}]', "text", "Item 2: field “text” is not text"),
        ("bad.csv", "a,b\n1,2\n", "text", "no column “text” (it has: a, b)"),
        ("empty.txt", "\n\n", "text", "The file has no samples"),
        ("bin.txt", b"\x00\x01\x02binary", "text", "looks binary"),
        ("latin.txt", b"ok\n" + "caf\u00e9\n".encode("latin-1"), "text", "not UTF-8"),
        ("data.xlsx", "x", "text", "Unsupported file type “.xlsx”"),
    ],
)
def test_bad_files_are_explained_and_leave_nothing(tmp_path, name, content, field, message):
    with pytest.raises(DatasetError, match=re.escape(message)):
        ingest(tmp_path, name, content, field)
    assert not (tmp_path / "stored").exists() and not (tmp_path / "stored.partial").exists()


def test_a_prefix_reads_a_bounded_part_of_a_sample_whatever_its_escapes(tmp_path):
    texts = ["short", "é" * 50 + '\n\t"quoted"' + "\x01" * 20, "x" * 100_000]
    data = TextDataset(datasets.store(iter(texts), tmp_path / "stored").folder)
    for index, text in enumerate(texts):
        for chars in range(1, 80):  # every cut, inside multi-byte characters and \uXXXX escapes too
            assert data.prefix(index, chars) == text[:chars], (index, chars)
    data.prefix(2, 10)
    assert data._handle.tell() - data.offsets[2] < 100  # 100,000 characters were not read for ten
