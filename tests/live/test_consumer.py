"""The live-page websocket: who may connect, and what reaches an open page when a job records
progress, in this process or in another one (the embedded default has no Redis)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from models_app.models import LanguageModel, ModelStatus
from models_app.progress import Tracker
from tests.helpers import run_async
from tests.workers import ROOT, studio_env

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
HOST = (b"host", b"127.0.0.1:8000")  # the studio the page came from


def application():
    from mistudio_site.asgi import application as app

    return app


def session_headers(client, user) -> list[tuple[bytes, bytes]]:
    client.force_login(user)
    return [ORIGIN, HOST, (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


def downloading_model() -> LanguageModel:
    return LanguageModel.objects.create(
        name="llama", repo_id="tiny/llama", status=ModelStatus.DOWNLOADING, bytes_total=1_000_000
    )


async def receive_containing(communicator: WebsocketCommunicator, text: str, timeout: float) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await communicator.receive_from(timeout=max(deadline - loop.time(), 0.01))
        if text in message:
            return message


def test_it_refuses_anonymous_connections():
    async def scenario():
        communicator = WebsocketCommunicator(application(), "/ws/live/", headers=[ORIGIN, HOST])
        connected, code = await communicator.connect()
        await communicator.disconnect()
        return connected, code

    connected, code = run_async(scenario)
    assert not connected and code == 4403


def test_it_refuses_a_foreign_origin(client, owner):
    headers = [(b"origin", b"http://evil.example")] + session_headers(client, owner)[1:]

    async def scenario():
        communicator = WebsocketCommunicator(application(), "/ws/live/", headers=headers)
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert not run_async(scenario)


def test_it_pushes_the_card_when_a_job_records_progress(client, owner):
    record = downloading_model()
    headers = session_headers(client, owner)

    async def scenario():
        communicator = WebsocketCommunicator(application(), "/ws/live/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        await sync_to_async(Tracker(LanguageModel, record.pk).update)(
            force=True, bytes_downloaded=512_000, phase_detail="Downloading model.safetensors"
        )
        message = await receive_containing(communicator, f'id="model-{record.pk}"', timeout=5)
        await communicator.disconnect()
        return message

    message = run_async(scenario)
    assert 'hx-swap-oob="morph"' in message and "Downloading model.safetensors" in message


@pytest.mark.slow
def test_it_pushes_progress_written_by_another_process(client, owner, settings):
    """The worker's in-memory layer cannot reach this process: the web process's watcher reads
    the changed row and fans it out, within about a second."""
    record = downloading_model()
    headers = session_headers(client, owner)
    writer = (
        "import django; django.setup()\n"
        "from models_app.models import LanguageModel\n"
        "from models_app.progress import Tracker\n"
        f"Tracker(LanguageModel, {record.pk}).update(force=True, bytes_downloaded=777_000,"
        " phase_detail='Downloading from elsewhere')\n"
    )

    async def scenario():
        communicator = WebsocketCommunicator(application(), "/ws/live/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        await asyncio.sleep(0.6)  # the watcher has taken its first look
        loop = asyncio.get_running_loop()
        await sync_to_async(subprocess.run)(
            [sys.executable, "-c", writer],
            cwd=ROOT,
            check=True,
            env=studio_env(settings, "http://127.0.0.1:9"),
        )
        written = loop.time()
        message = await receive_containing(communicator, "Downloading from elsewhere", timeout=5)
        delay = loop.time() - written
        await communicator.disconnect()
        return message, delay

    message, delay = run_async(scenario)
    assert f'id="model-{record.pk}"' in message and delay < 1.5


def test_a_deleted_record_leaves_open_pages(client, owner):
    record = downloading_model()
    LanguageModel.objects.filter(pk=record.pk).update(status=ModelStatus.ERROR)
    headers = session_headers(client, owner)

    async def scenario():
        communicator = WebsocketCommunicator(application(), "/ws/live/", headers=headers)
        assert (await communicator.connect())[0]
        await sync_to_async(client.post)(f"/models/{record.pk}/delete/", HTTP_HX_REQUEST="true")
        message = await receive_containing(communicator, f'id="model-{record.pk}"', timeout=5)
        await communicator.disconnect()
        return message

    assert 'hx-swap-oob="delete"' in run_async(scenario)


def test_an_extractions_progress_reaches_its_page_and_its_row_in_the_history(client, owner):
    from models_app.models import Dataset, Extraction, ExtractionStatus

    model = LanguageModel.objects.create(name="llama", repo_id="tiny/llama", status=ModelStatus.READY)
    dataset = Dataset.objects.create(name="corpus", status="ready")
    record = Extraction.objects.create(
        model=model,
        dataset=dataset,
        layers=[0, 1],
        hooks=["mlp"],
        status=ExtractionStatus.EXTRACTING,
        samples_total=40,
    )
    headers = session_headers(client, owner)

    async def scenario():
        communicator = WebsocketCommunicator(application(), "/ws/live/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        await sync_to_async(Tracker(Extraction, record.pk).update)(force=True, samples_done=17)
        status = await receive_containing(communicator, f'id="extraction-{record.pk}"', timeout=5)
        row = await receive_containing(communicator, f'id="extraction-row-{record.pk}"', timeout=5)
        await communicator.disconnect()
        return status, row

    status, row = run_async(scenario)
    # A row comes in a message of its own: a <tr> after other elements would not parse as a row.
    assert row.strip().startswith(f'<tr id="extraction-row-{record.pk}"') and row.strip().endswith("</tr>")
    assert "17 / 40" in row and status.strip().startswith(f'<div id="extraction-{record.pk}"')


def test_a_private_studio_pushes_only_ones_own_records(client, other_user, django_user_model, settings):
    settings.PRIVATE = True
    alice = django_user_model.objects.create_user("alice", password="pw-alice-123")
    theirs = LanguageModel.objects.create(
        name="theirs", repo_id="tiny/theirs", owner=alice, status=ModelStatus.DOWNLOADING
    )
    mine = LanguageModel.objects.create(
        name="mine", repo_id="tiny/mine", owner=other_user, status=ModelStatus.DOWNLOADING
    )
    headers = session_headers(client, other_user)

    async def scenario():
        communicator = WebsocketCommunicator(application(), "/ws/live/", headers=headers)
        assert (await communicator.connect())[0]
        for record in (theirs, mine):  # theirs first: had it been sent, it would arrive first
            await sync_to_async(Tracker(LanguageModel, record.pk).update)(force=True, phase_detail="moving")
        message = await receive_containing(communicator, 'id="model-', timeout=5)
        await communicator.disconnect()
        return message

    message = run_async(scenario)
    assert f'id="model-{mine.pk}"' in message and f'id="model-{theirs.pk}"' not in message
