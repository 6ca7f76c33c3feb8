"""The extraction modal's estimate tokenizes a bounded number of characters in the web process,
however long the dataset's samples are."""

from __future__ import annotations

import tracemalloc

import pytest

from models_app.ml import datasets
from models_app.models import Dataset
from models_app.services import estimate

# Slow: every test first downloads a model and adds a dataset by their real jobs (`ready`).
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_it_reads_a_bounded_part_of_long_samples(ready, settings):
    model, _corpus = ready
    folder = settings.DATASETS_DIR / "long"
    stored = datasets.store(iter(["word " * 400_000] * 20), folder)  # 20 samples of 2 M characters
    long = Dataset.objects.create(
        name="long",
        source="upload",
        source_detail="long.txt",
        file_format="txt",
        status="ready",
        num_samples=stored.samples,
        file_path=str(folder),
    )
    tracemalloc.start()
    share, source = estimate.real_token_share(model, long, 128)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (share, source) == (1.0, "sampled")  # every text fills the context
    assert peak < 8 << 20  # one sample alone is 2 MB; all of them, 40 MB
