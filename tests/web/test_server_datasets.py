"""Hostile dataset files against the real studio: `manage.py run_studio` with its workers, an
upload through the login form and the upload form, as a browser sends them."""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models_app.models import Dataset
from tests.workers import Studio, start_studio, stop

# Slow: run_studio in a process of its own.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
MB = 1 << 20


@pytest.fixture
def studio(settings, hub):
    process, url = start_studio(settings, hub.endpoint)
    yield Studio(process, url)
    stop(process)


def wait_for_dataset(name: str, timeout: float = 60) -> Dataset:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = Dataset.objects.filter(name=name).first()
        if record is not None and not record.is_active:
            return record
        time.sleep(0.25)
    raise AssertionError(f"dataset {name} did not finish: {Dataset.objects.filter(name=name).first()}")


def test_it_reads_a_parquet_bomb_in_a_job_and_refuses_it_with_the_web_server_unmoved(studio, owner, tmp_path):
    pq.write_table(
        pa.table({"text": ["a" * (8 * MB)] * 64}),
        tmp_path / "bomb.parquet",
        compression="zstd",
        compression_level=22,
    )  # 704 bytes for 512 MiB of text
    browser = studio.sign_in("owner", "pw-owner-123")
    before = studio.peak_memory()
    answer = studio.upload(browser, "bomb.parquet", (tmp_path / "bomb.parquet").read_bytes())
    assert answer.status_code == 200 and "Queued" in answer.text  # the card, not the samples
    record = wait_for_dataset("bomb")
    assert record.status == "error"
    assert record.error_message == "Row 1 of the Parquet file is longer than 4,194,304 characters."
    assert not record.incoming_folder.exists() and not record.folder.exists()
    assert studio.peak_memory() - before < 300 * MB


def test_it_reads_ten_megabytes_of_one_character_lines_in_a_job(studio, owner):
    browser = studio.sign_in("owner", "pw-owner-123")
    answer = studio.upload(browser, "letters.txt", b"a\n" * (5 * MB))
    assert answer.status_code == 200
    record = wait_for_dataset("letters", timeout=120)
    assert record.status == "ready" and record.num_samples == 5 * MB, record.error_message
