"""A small text dataset repository laid out as on the Hub, for tests and the demo hub."""

from __future__ import annotations

import json
from pathlib import Path

CORPUS = [
    f"Sample {i}: the residual stream at layer {i % 4} carries feature {i * 7 % 11}." for i in range(40)
]


def build_corpus(folder: Path) -> Path:
    """A parquet split with a `text` column (what a dataset id alone picks), plus a JSON-lines
    file whose field is `content`, so a file pattern and another text field can be tried."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table({"text": CORPUS, "id": list(range(len(CORPUS)))}),
        folder / "data" / "train-00000-of-00001.parquet",
    )
    (folder / "extra.jsonl").write_text("\n".join(json.dumps({"content": t}) for t in CORPUS[:5]))
    (folder / "README.md").write_text("# corpus\n")
    return folder
