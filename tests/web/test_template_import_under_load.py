"""A large template import against the real studio (`run_studio` with its workers, SQLite) while
an extraction runs and other people keep writing: the import holds the database only for a
moment, so nobody else's write waits long or fails, and the extraction completes."""

from __future__ import annotations

import json
import threading
import time

import pytest

from models_app.models import Extraction
from models_app.services import datasets as dataset_services
from templates_app.models import ExtractionTemplate
from tests.workers import Studio, start_studio, stop

# Slow: run_studio under load.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
TEMPLATES = 7000


@pytest.fixture
def studio(settings, hub, ready):
    process, url = start_studio(settings, hub.endpoint)
    yield Studio(process, url)
    stop(process)


def templates_file() -> bytes:
    return json.dumps(
        {
            "version": "1.0",
            "templates": [
                {
                    "name": f"probe {i}",
                    "layer_indices": [0, 1],
                    "hook_types": ["residual"],
                    "max_samples": 100,
                    "batch_size": 8,
                    "top_k_examples": 10,
                    "is_favorite": False,
                    "extra_metadata": {"i": i},
                    "created_at": "2024-01-01T00:00:00Z",
                }
                for i in range(TEMPLATES)
            ],
        }
    ).encode()


def test_it_imports_7000_templates_while_an_extraction_runs_and_others_write(studio, ready, tmp_path, owner):
    model, _corpus = ready
    corpus = tmp_path / "long.txt"
    corpus.write_text(
        "".join(f"Sample {i}: features of the residual stream at layer {i % 4}.\n" for i in range(6_000))
    )
    dataset = dataset_services.add_from_file(corpus, "long")
    browser = studio.sign_in("owner", "pw-owner-123")
    csrf = {"csrfmiddlewaretoken": browser.cookies["csrftoken"]}
    referer = {"Referer": f"{studio.url}/"}
    started = browser.post(
        f"{studio.url}/models/{model.pk}/extract/start/",
        headers=referer,
        data={
            **csrf,
            "dataset": dataset.pk,
            "layers": ["0", "1"],
            "hooks": ["residual", "mlp"],
            "batch_size": 8,
            "max_samples": 6_000,
            "context_length": 64,
            "top_k": 5,
            "dtype": "float32",
            "context_prefix_tokens": 25,
            "context_suffix_tokens": 25,
        },
    )
    assert started.status_code == 200, started.text[-2000:]
    extraction = Extraction.objects.get()
    deadline = time.monotonic() + 120
    while Extraction.objects.get().status != "extracting" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert Extraction.objects.get().status == "extracting"

    writes, stop_writing = [], threading.Event()

    def keep_writing():  # another person at work: renaming a model, saving templates
        other = studio.sign_in("owner", "pw-owner-123")
        headers, token = referer, {"csrfmiddlewaretoken": other.cookies["csrftoken"]}
        number = 0
        while not stop_writing.is_set():
            number += 1
            began = time.monotonic()
            renamed = other.post(
                f"{studio.url}/models/{model.pk}/rename/",
                headers=headers,
                data={**token, "name": f"llama {number}"},
            )
            saved = other.post(
                f"{studio.url}/templates/new/",
                headers=headers,
                data={
                    **token,
                    "name": f"mine {number}",
                    "layer_indices": "0",
                    "hook_types": "residual",
                    "batch_size": 8,
                    "context_length": 128,
                    "top_k_examples": 10,
                    "context_prefix_tokens": 25,
                    "context_suffix_tokens": 25,
                    "dtype": "float16",
                    "extra_metadata": "{}",
                },
            )
            writes.append((renamed.status_code, saved.status_code, time.monotonic() - began))

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        imported = browser.post(
            f"{studio.url}/templates/import/",
            headers=referer,
            data={**csrf, "on_duplicate": "skip"},
            files={"file": ("templates.json", templates_file())},
        )
    finally:
        stop_writing.set()
        writer.join(60)
    assert imported.status_code == 200 and f"{TEMPLATES} created" in imported.text
    assert ExtractionTemplate.objects.filter(name__startswith="probe ").count() == TEMPLATES
    assert len(writes) >= 3 and all(w[:2] in ((200, 200), (200, 302)) for w in writes), writes
    assert max(w[2] for w in writes) < 10, writes  # nobody waited out the import
    deadline = time.monotonic() + 300
    while Extraction.objects.get().is_active and time.monotonic() < deadline:
        time.sleep(0.5)
    extraction.refresh_from_db()
    assert extraction.status == "completed", extraction.error_message
