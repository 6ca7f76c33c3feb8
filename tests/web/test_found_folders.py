"""Folders found on disk (a data directory restored without its database): a crafted
metadata.json is shown as unusable with the reason (never a server error), only staff see, import
or delete them, and an import moves files outside any transaction in an order that survives a
crash at any point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from django.db import connection
from django.urls import reverse

from models_app.models import Dataset, Extraction, LanguageModel
from tests.workers import ROOT, studio_env

pytestmark = pytest.mark.django_db(transaction=True)


def valid_metadata() -> dict:
    stats = {
        "layer": 0,
        "hook": "residual",
        "module": "model.layers.0",
        "shape": [2, 4, 8],
        "file": "layer_0_residual.npy",
        "file_size": 384,
        "disk_size": 4096,
        "tokens": 6,
        "mean": 0.1,
        "mean_abs": 0.2,
        "std": 0.3,
        "min": -1.0,
        "max": 1.0,
        "sparsity_percent": 10.0,
        "l2_norm_mean": 0.5,
        "histogram": {"edges": [-1.0, 0.0, 1.0], "counts": [20, 28], "below": 0, "above": 0, "nonfinite": 0},
    }
    return {
        "complete": True,
        "extraction_id": 7,
        "settings": {
            "layers": [0],
            "hooks": ["residual"],
            "batch_size": 2,
            "max_samples": None,
            "context_length": 4,
            "top_k": 1,
            "dtype": "float32",
            "micro_batch_size": None,
        },
        "samples": 2,
        "context_length": 4,
        "hidden_size": 8,
        "dtype": "float32",
        "real_tokens": 6,
        "padded_tokens": 8,
        "decoder_layers": "model.layers",
        "statistics": {"layer_0_residual": stats},
        "files": ["layer_0_residual.npy", "metadata.json"],
        "size": {"logical_bytes": 384, "disk_bytes": 4096},
        "timings": {
            "started": time.time() - 60,
            "seconds": 12.5,
            "samples_per_second": 0.16,
            "tokens_per_second": 0.5,
        },
        "oom_events": [],
        "final_batch_size": 2,
        "model": {
            "id": 1,
            "repo_id": "tiny/llama",
            "revision": "main",
            "commit_sha": "c" * 40,
            "requested_quantization": "fp32",
            "effective_quantization": "fp32",
            "device": "cpu",
        },
        "dataset": {"id": 1, "name": "corpus", "source": "hub:data/corpus"},
    }


def found_folder(settings, name: str, metadata: dict | None = None, raw: str | bytes | None = None):
    folder = settings.ACTIVATIONS_DIR / name
    folder.mkdir(parents=True)
    np.save(folder / "layer_0_residual.npy", np.zeros((2, 4, 8), np.float32))
    text = raw if raw is not None else json.dumps(metadata or valid_metadata())
    (folder / "metadata.json").write_bytes(text.encode() if isinstance(text, str) else text)
    return folder


@pytest.fixture
def targets():
    model = LanguageModel.objects.create(name="llama", repo_id="tiny/llama", status="ready")
    dataset = Dataset.objects.create(
        name="corpus", source="hub", source_detail="data/corpus", status="ready", num_samples=2
    )
    return model, dataset


def changed(edit):
    meta = valid_metadata()
    edit(meta)
    return meta


def deep(meta):
    return json.dumps(meta)[:-1] + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"


CRAFTED = {
    "huge timestamp": (changed(lambda m: m["timings"].update(started=1e20)), None, "timings.started must be"),
    "slash in a file name": (
        changed(lambda m: m["files"].append("../../secret_key")),
        None,
        "not a plain file name inside the folder",
    ),
    "dot-dot file name": (changed(lambda m: m["files"].append("..")), None, "not a plain file name"),
    "layers as text": (
        changed(lambda m: m["settings"].update(layers="0-3")),
        None,
        "settings.layers must be",
    ),
    "batch size too large": (
        changed(lambda m: m["settings"].update(batch_size=10**30)),
        None,
        "settings.batch_size must be",
    ),
    "histogram of text": (
        changed(lambda m: m["statistics"]["layer_0_residual"]["histogram"].update(counts=["a", "b"])),
        None,
        "histogram must have counts",
    ),
    "a file of 9 MiB": (
        None,
        json.dumps({**valid_metadata(), "padding": "x" * (9 << 20)}),
        "larger than 8 MiB",
    ),
    "nested 100,000 deep": (None, deep(valid_metadata()), "nested too deeply"),
    "NaN": (None, json.dumps(valid_metadata()).replace('"mean": 0.1', '"mean": NaN'), "NaN is not a number"),
    "not JSON": (None, '{"complete": true,', "not valid JSON (line 1"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_it_shows_a_crafted_metadata_json_as_unusable_with_the_reason(owner_client, settings, targets, case):
    metadata, raw, reason = CRAFTED[case]
    folder = found_folder(settings, "restored", metadata, raw)
    listing = owner_client.get(reverse("models_app:extractions"))
    html = listing.content.decode()
    assert listing.status_code == 200 and 'id="found-folders"' in html
    assert "Cannot be imported" in html and reason in html, html[html.index('id="found-folders"') :][:1500]
    assert 'name="model" aria-label="Model of restored"' not in html  # no import form for it

    model, dataset = targets
    response = owner_client.post(
        reverse("models_app:extraction-import"),
        {"folder": "restored", "model": model.pk, "dataset": dataset.pk},
        follow=True,
    )
    assert response.status_code == 200 and "restored cannot be imported" in response.content.decode()
    assert not Extraction.objects.exists() and (folder / "metadata.json").exists()


def test_it_refuses_a_metadata_json_that_is_a_link(owner_client, settings, targets, tmp_path):
    folder = found_folder(settings, "restored")
    outside = tmp_path / "elsewhere.json"
    (folder / "metadata.json").rename(outside)
    (folder / "metadata.json").symlink_to(outside)
    html = owner_client.get(reverse("models_app:extractions")).content.decode()
    assert "Cannot be imported: metadata.json cannot be opened" in html


def test_it_imports_a_valid_folder_and_its_page_renders(owner_client, settings, targets):
    found_folder(settings, "restored")
    found_folder(settings, "²")  # a name str.isdigit() takes for a number, which int() refuses
    html = owner_client.get(reverse("models_app:extractions")).content.decode()
    assert "Cannot be imported" not in html and 'aria-label="Model of ²"' in html
    model, dataset = targets
    response = owner_client.post(
        reverse("models_app:extraction-import"),
        {"folder": "restored", "model": model.pk, "dataset": dataset.pk},
    )
    record = Extraction.objects.get()
    assert response["Location"] == reverse("models_app:extraction", args=[record.pk])
    assert record.layers == [0] and record.hooks == ["residual"] and record.duration.total_seconds() == 12.5
    page = owner_client.get(reverse("models_app:extraction", args=[record.pk]))
    assert page.status_code == 200 and not record.missing_files and record.size_bytes > 0


def test_it_lets_only_staff_see_import_or_delete_found_folders(
    client, other_user, owner_client, settings, targets
):
    folder = found_folder(settings, "restored")
    client.force_login(other_user)  # a shared studio: other_user reads every record, but is not staff
    assert 'id="found-folders"' not in client.get(reverse("models_app:extractions")).content.decode()
    model, dataset = targets
    response = client.post(
        reverse("models_app:extraction-import"),
        {"folder": "restored", "model": model.pk, "dataset": dataset.pk},
        follow=True,
    )
    assert "Only staff can import or delete folders found on disk" in response.content.decode()
    response = client.post(reverse("models_app:found-delete"), {"folder": "restored"}, follow=True)
    assert "Only staff can import or delete folders found on disk" in response.content.decode()
    assert folder.exists() and not Extraction.objects.exists()


def test_it_lets_staff_delete_a_found_folder_and_nothing_else(owner_client, settings, targets):
    model, dataset = targets
    unusable = found_folder(settings, "broken", raw="{]")
    owner_client.post(reverse("models_app:found-delete"), {"folder": "broken"})
    assert not unusable.exists()

    record = Extraction.objects.create(model=model, dataset=dataset, status="completed")
    real = found_folder(settings, str(record.pk))  # a record's own folder is not "found"
    outside = settings.ACTIVATIONS_DIR.parent / "datasets"
    outside.mkdir(parents=True)
    (outside / "metadata.json").write_text("{}")
    for name in (str(record.pk), "../datasets", "..", ".", ""):
        response = owner_client.post(reverse("models_app:found-delete"), {"folder": name}, follow=True)
        assert "No folder found on disk named" in response.content.decode(), name
    assert real.exists() and (outside / "metadata.json").exists()


def test_it_moves_no_file_inside_a_database_transaction(owner_client, settings, targets, monkeypatch):
    found_folder(settings, "restored")
    moves = []
    real_replace = os.replace

    def watched(source, target):
        moves.append((os.fspath(source), os.fspath(target), connection.in_atomic_block))
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", watched)
    model, dataset = targets
    owner_client.post(
        reverse("models_app:extraction-import"),
        {"folder": "restored", "model": model.pk, "dataset": dataset.pk},
    )
    record = Extraction.objects.get()
    assert moves and not any(in_transaction for _source, _target, in_transaction in moves), moves
    assert moves[-1][1] == str(record.output_dir) and not record.missing_files


CRASH = """
import os, sys
import django
django.setup()
from django.test.utils import setup_test_environment
setup_test_environment()
from django.contrib.auth.models import User
from django.test import Client
from models_app.models import Extraction

create = Extraction.objects.create

def crash(**fields):
    if sys.argv[1] == "after":
        create(**fields)
    os._exit(3)  # the process dies here: no except, no finally

Extraction.objects.create = crash
client = Client()
client.force_login(User.objects.get(username="owner"))
client.post("/extractions/import/", {"folder": "restored", "model": sys.argv[2], "dataset": sys.argv[3]})
"""


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before", "after"])
def test_it_leaves_the_folder_importable_when_the_import_dies_midway(owner_client, settings, targets, point):
    """A crash just before, or just after, the record is written: the folder is still listed
    and imports; no file is lost."""
    found_folder(settings, "restored")
    model, dataset = targets
    died = subprocess.run(
        [sys.executable, "-c", CRASH, point, str(model.pk), str(dataset.pk)],
        cwd=ROOT,
        env=studio_env(settings, "http://127.0.0.1:9"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert died.returncode == 3, died.stderr[-2000:]

    html = owner_client.get(reverse("models_app:extractions")).content.decode()
    [name] = [p.name for p in settings.ACTIVATIONS_DIR.iterdir() if (p / "metadata.json").exists()]
    assert f'aria-label="Model of {name}"' in html  # listed and importable under whatever name it has now
    owner_client.post(
        reverse("models_app:extraction-import"), {"folder": name, "model": model.pk, "dataset": dataset.pk}
    )
    imported = Extraction.objects.order_by("-pk").first()
    assert imported.status == "completed" and not imported.missing_files
    assert np.load(imported.output_dir / "layer_0_residual.npy").shape == (2, 4, 8)
