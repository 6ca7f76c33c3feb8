"""ml/outputs.py: what a checkpoint says was written, whichever thread wrote the rows."""

from __future__ import annotations

import threading

import numpy as np

from models_app.ml.outputs import Outputs

ROW = np.arange(6, dtype=np.float32).reshape(2, 3)  # one row of 2 tokens x 3 values: 24 bytes


def write(outputs: Outputs, row: int) -> None:
    outputs.write_rows("a.npy", [row], [2], ROW)


def test_a_checkpoint_after_rows_written_here_counts_those_rows_only(tmp_path):
    outputs = Outputs(tmp_path, {"a.npy": (np.float32, (4, 2, 3))})
    saved: list[int] = []
    writer_free = threading.Event()
    outputs.submit(writer_free.wait)  # the writer thread gets to the checkpoint late

    outputs.write_here(lambda: write(outputs, 0))
    outputs.checkpoint(saved.append)
    outputs.write_here(lambda: write(outputs, 1))  # the next batch, before the writer got there
    writer_free.set()
    outputs.finish()

    assert saved == [ROW.nbytes]
    assert outputs.bytes_written == 2 * ROW.nbytes


def test_a_checkpoint_after_rows_submitted_counts_them_once_written(tmp_path):
    outputs = Outputs(tmp_path, {"a.npy": (np.float32, (4, 2, 3))})
    saved: list[int] = []

    outputs.submit(lambda: write(outputs, 0))
    outputs.submit(lambda: write(outputs, 1))
    outputs.checkpoint(saved.append)
    outputs.submit(lambda: write(outputs, 2))
    outputs.finish()

    assert saved == [2 * ROW.nbytes]
    assert np.load(tmp_path / "a.npy")[:3].tolist() == [ROW.tolist()] * 3
