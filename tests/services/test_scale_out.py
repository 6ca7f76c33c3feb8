"""The scale-out shape for real: PostgreSQL for the rows, Redis as the Django-Q2 broker and the
channel layer, separate qcluster processes taking the jobs the web side queued, and their
progress reaching a signed-in page through channels_redis."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import psycopg
import pytest

from tests.helpers import run_async

# Slow: a scale-out deployment with qclusters on Redis.
pytestmark = pytest.mark.slow

QUEUE_DOWNLOAD_AND_DATASET = """
post("download", {"repo_id": "tiny/llama", "revision": "main", "quantization": "q8"})
post("dataset-hub", {"repo_id": "data/corpus", "revision": "main", "text_field": "text", "name": "corpus"})
print(LanguageModel.objects.get(repo_id="tiny/llama").pk, Dataset.objects.get(name="corpus").pk)
"""

START_EXTRACTION = """
model, dataset = LanguageModel.objects.get(), Dataset.objects.get()
response = post("extract-start", {"dataset": dataset.pk, "layers": [0, 1], "hooks": ["residual", "mlp"],
                                  "batch_size": 4, "max_samples": 10, "context_length": 24, "top_k": 3,
                                  "dtype": "float32"}, pk=model.pk)
print(resolve(response.url).kwargs["pk"])
"""

QUEUE_DOWNLOAD = """
post("download", {"repo_id": "tiny/llama", "revision": "main", "quantization": "fp32"})
print(LanguageModel.objects.get(repo_id="tiny/llama").pk)
"""

MODEL_DONE = {"ready", "error", "cancelled"}
DATASET_DONE = {"ready", "error", "cancelled"}
EXTRACTION_DONE = {"completed", "failed", "cancelled"}
IDLE_PAGE_SECONDS = 7


def test_it_runs_downloads_and_extractions_queued_by_the_web_side_on_shared_worker_processes(scale_out, hub):
    scale_out.start_worker()
    scale_out.start_worker()
    scale_out.start_worker("gpu")
    scale_out.wait_for_workers()

    model_pk, dataset_pk = map(int, scale_out.web(QUEUE_DOWNLOAD_AND_DATASET).split())
    status, error = scale_out.wait_for_row("models_app_dataset", dataset_pk, DATASET_DONE)
    assert status == "ready", error
    status, error = scale_out.wait_for_row("models_app_languagemodel", model_pk, MODEL_DONE)
    assert status == "ready", error

    extraction_pk = int(scale_out.web(START_EXTRACTION))
    status, error = scale_out.wait_for_row("models_app_extraction", extraction_pk, EXTRACTION_DONE)
    assert status == "completed", error

    deadline = time.monotonic() + 30  # a cluster saves its task's result just after the job's row
    while True:
        with psycopg.connect(scale_out.database) as conn:
            ran = conn.execute(
                "SELECT func, cluster FROM django_q_task WHERE success ORDER BY started"
            ).fetchall()
        if len(ran) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(ran) == [
        ("models_app.jobs.dataset.fetch_hub_dataset", "downloads"),
        ("models_app.jobs.download.run_download", "downloads"),
        ("models_app.jobs.extraction.run_extraction", "gpu"),
    ]
    data = scale_out.data_dir
    assert (data / "models" / "quantized" / f"{model_pk}_q8" / "model.safetensors").exists()
    folder = data / "activations" / str(extraction_pk)
    assert {p.name for p in folder.iterdir()} == {
        "layer_0_residual.npy",
        "layer_0_mlp.npy",
        "layer_1_residual.npy",
        "layer_1_mlp.npy",
        "tokens.npy",
        "attention_mask.npy",
        "metadata.json",
        "topk_layer_0_residual.npz",
        "topk_layer_0_mlp.npz",
        "topk_layer_1_residual.npz",
        "topk_layer_1_mlp.npz",
    }
    assert np.load(folder / "layer_1_mlp.npy", mmap_mode="r").shape == (10, 24, 128)
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["model"]["repo_id"] == "tiny/llama" and meta["dataset"]["name"] == "corpus"


def test_it_sends_a_workers_progress_to_a_signed_in_page_through_redis(
    scale_out, web_process_database, hub, settings, client
):
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth import get_user_model

    from mistudio_site.asgi import application

    # This process plays a web server of the deployment: the same channels_redis layer its
    # settings build from REDIS_URL, and its PostgreSQL database (web_process_database).
    settings.CHANNEL_LAYERS = scale_out.setting("CHANNEL_LAYERS")
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    # (not the django_user_model fixture: it would put this test in the SQLite test database)
    client.force_login(get_user_model().objects.create_user("viewer", password="pw-viewer-123"))
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    hub.repos["tiny/llama"].bytes_per_second = 300_000  # a download that lasts a few seconds

    def start_a_worker() -> None:
        scale_out.start_worker()
        scale_out.wait_for_workers()

    async def watch_the_page() -> tuple[int, list[str]]:
        page = WebsocketCommunicator(
            application,
            "/ws/live/",
            headers=[
                (b"cookie", cookie.encode()),
                (b"origin", b"http://localhost:8000"),
                (b"host", b"localhost:8000"),
            ],
        )  # in ALLOWED_HOSTS
        connected, code = await page.connect(timeout=10)
        assert connected, code
        try:
            opened = time.monotonic()
            await asyncio.to_thread(start_a_worker)
            # A page often stays open with nothing to hear for longer than a socket read timeout
            # (redis-py's default is 5 s): it must still get the job that starts afterwards.
            await asyncio.sleep(max(0.0, IDLE_PAGE_SECONDS - (time.monotonic() - opened)))
            model_pk = int(await asyncio.to_thread(scale_out.web, QUEUE_DOWNLOAD))
            card = f'<article id="model-{model_pk}" class="card status-'
            seen: list[str] = []
            deadline = time.monotonic() + 45
            while not any(f"{card}ready" in text for text in seen):
                seen.append(await page.receive_from(timeout=max(deadline - time.monotonic(), 0.1)))
            return model_pk, seen
        finally:
            await page.disconnect()

    model_pk, seen = run_async(watch_the_page)
    downloading = [t for t in seen if f'<article id="model-{model_pk}" class="card status-downloading"' in t]
    assert downloading, seen
    assert all(f'id="model-{model_pk}"' in t for t in seen)
    assert " / " in downloading[-1] and "ETA" in downloading[-1]  # bytes done / total, speed, ETA
