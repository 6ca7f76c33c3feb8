from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from models_app.ml.datasets import DatasetError, TextDataset
from models_app.models import Dataset
from models_app.services import datasets as dataset_services
from tests.tinydatasets import CORPUS

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_it_adds_a_hub_dataset_through_the_hub_client(hub, settings):
    out = run("add_dataset", "data/corpus", "--name", "corpus")
    record = Dataset.objects.get()
    assert f"Dataset {record.pk}: corpus, 40 samples" in out
    assert record.source == "hub" and record.file_format == "parquet" and record.status == "ready"
    assert list(TextDataset(record.file_path)) == CORPUS
    assert record.preview == CORPUS[:5]
    paths = [p for m, p, h in hub.requests if "/datasets/data/corpus/resolve/" in p]
    assert paths and all("train-00000-of-00001.parquet" in p for p in paths)
    assert run("list_datasets").startswith(f"{record.pk}\tcorpus\thub:data/corpus@main")


def test_it_picks_hub_files_by_pattern_and_field(hub):
    run("add_dataset", "data/corpus", "--files", "*.jsonl", "--text-field", "content")
    assert list(TextDataset(Dataset.objects.get().file_path)) == CORPUS[:5]


@pytest.mark.parametrize(
    "args, message",
    [
        (["data/missing"], "was not found on the Hub"),
        (["data/corpus", "--files", "*.xml"], "has no file matching *.xml"),
        (["data/corpus", "--text-field", "body"], "has no column “body”"),
        (["data/corpus", "--revision", "v2"], "Revision 'v2' does not exist"),
    ],
)
def test_hub_dataset_problems_are_explained(hub, args, message, settings):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("add_dataset", *args)
    assert not Dataset.objects.exists()
    assert not settings.DATASETS_DIR.exists() or not any(settings.DATASETS_DIR.iterdir())


def test_it_adds_a_local_file_and_refuses_oversized_ones(tmp_path, settings):
    source = tmp_path / "notes.txt"
    source.write_text("one\ntwo\nthree\n")
    run("add_dataset", str(source), "--name", "notes")
    assert Dataset.objects.get().num_samples == 3
    settings.MAX_UPLOAD_BYTES = 10
    with pytest.raises(DatasetError, match="the studio accepts at most"):
        dataset_services.add_from_file(source, "big")
    assert Dataset.objects.count() == 1


def test_deleting_a_dataset_frees_its_files(tmp_path):
    source = tmp_path / "a.jsonl"
    source.write_text('{"text": "x"}\n{"text": "y"}\n')
    record = dataset_services.add_from_file(source, "a")
    folder = record.file_path
    assert record.delete_with_files() > 0
    assert not Dataset.objects.exists() and not __import__("pathlib").Path(folder).exists()
