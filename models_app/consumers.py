"""Live pages. Every signed-in page opens one websocket here; when a job's record changes, the
consumer renders the same fragment the page renders (model card, dataset row, extraction
status) and sends it, and the htmx ws extension swaps it in by id. The row in the database
stays the one source of truth: a reload shows what the socket showed.

How a change reaches the consumers (progress.publish):
- with Redis (REDIS_URL), workers publish through channels_redis to every web process;
- in the embedded default (in-memory layer) a worker process cannot reach the web process's
  layer, so one watcher task per web process reads which rows changed (one query per job kind
  every WATCH_INTERVAL, by `updated_at`) and fans out in memory, whatever the number of pages.
The watcher also fails jobs whose worker died (JobRecord.fail_stale) every REAP_INTERVAL.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import path
from django.utils import timezone

from .jobs.lost import check_lost_jobs
from .models import JOB_KINDS, ActivationExport, Comparison, Dataset, Extraction, FormatCheck, LanguageModel
from .progress import LIVE_GROUP

log = logging.getLogger(__name__)

WATCH_INTERVAL = 0.5  # seconds between the embedded watcher's looks at the database
WATCH_MARGIN = timedelta(seconds=2)  # rows written just before a look may commit just after it
REAP_INTERVAL = 10.0  # seconds between lost-worker checks
RENDER_CACHE_SIZE = 256


class LiveConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4403)  # refused before the handshake completes
            return
        await self.channel_layer.group_add(LIVE_GROUP, self.channel_name)
        await self.accept()
        Watcher.join()

    async def disconnect(self, code: int) -> None:
        if self.scope.get("user") is not None and self.scope["user"].is_authenticated:
            await self.channel_layer.group_discard(LIVE_GROUP, self.channel_name)
            Watcher.leave()

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """Pages only listen; anything they send is ignored."""

    async def record_changed(self, event: dict) -> None:
        user = self.scope["user"]
        # A private studio's model card counts only the viewer's own extractions.
        viewer = user if settings.PRIVATE and not user.is_staff else None
        fragments, owner_id = await database_sync_to_async(render_update)(
            event["kind"], event["pk"], event.get("deleted", False), event.get("version"), viewer
        )
        if settings.PRIVATE and not user.is_staff and owner_id not in (None, user.pk):
            return  # a private studio: the record is not this user's to see
        for html in fragments:  # one message each: a table row parses only as the first element
            await self.send(text_data=html)


_render_cache: dict[tuple, tuple[list[str], int | None]] = {}


def render_update(
    kind: str, pk: int, deleted: bool = False, version: str | None = None, viewer=None
) -> tuple[list[str], int | None]:
    """The out-of-band fragments that bring a page up to date with one record, and who may see
    them in a private studio: the record's owner's id (0 when it has none: staff only), or None
    for a removal, which anyone may get (removing what a page does not show does nothing).
    Rendered once per version of the row (and `viewer`, whose extractions alone a card counts;
    None: everyone's), however many pages are open."""
    key = (kind, pk, version, viewer.pk if viewer is not None else None)
    if version and key in _render_cache:
        return _render_cache[key]
    update = _render(kind, pk, deleted, viewer)
    if version:
        if len(_render_cache) >= RENDER_CACHE_SIZE:
            _render_cache.clear()
        _render_cache[key] = update
    return update


def _render(kind: str, pk: int, deleted: bool, viewer) -> tuple[list[str], int | None]:
    if kind == Extraction.KIND:
        extraction = Extraction.objects.select_related("model__owner", "dataset").filter(pk=pk).first()
        if extraction is None:
            return [], None
        return [
            render_to_string(
                "models_app/extraction.html#extraction-status", {"extraction": extraction, "oob": True}
            ),
            render_to_string(
                "models_app/extractions.html#extraction-row", {"extraction": extraction, "oob": True}
            ),
            _model_card(extraction.model, viewer),
        ], extraction.owner_id or 0
    if kind == ActivationExport.KIND:
        export = ActivationExport.objects.select_related("extraction").filter(pk=pk).first()
        if deleted or export is None:
            return [f'<div id="export-{pk}" hx-swap-oob="delete"></div>'], None
        # The extraction's whole exports section: a new export then appears on every open page.
        section = render_to_string(
            "models_app/extraction.html#exports", {"extraction": export.extraction, "oob": True}
        )
        return [section], export.extraction.owner_id or 0
    if kind == Comparison.KIND:
        comparison = Comparison.objects.select_related("base__model", "base__dataset").filter(pk=pk).first()
        if deleted or comparison is None:
            return [f'<div id="comparison-{pk}" hx-swap-oob="delete"></div>'], None
        context = {"comparison": comparison, "extraction": comparison.base, "oob": True}
        return [
            render_to_string("models_app/comparison.html#comparison-status", context),
            render_to_string("models_app/extraction.html#comparison-list", context),
        ], comparison.base.owner_id or 0
    if kind == FormatCheck.KIND:  # followed from the terminal and the API: no page shows one live
        return [], None
    if kind == Dataset.KIND:
        dataset = Dataset.objects.select_related("owner").filter(pk=pk).first()
        if deleted or dataset is None:
            return [f'<div id="dataset-{pk}" hx-swap-oob="delete"></div>'], None
        return [
            render_to_string("models_app/datasets.html#dataset-row", {"dataset": dataset, "oob": True})
        ], dataset.owner_id or 0
    model = LanguageModel.objects.select_related("owner").filter(pk=pk).first()
    if deleted or model is None:
        return [f'<div id="model-{pk}" hx-swap-oob="delete"></div>'], None
    return [_model_card(model, viewer)], model.owner_id or 0


def _model_card(record: LanguageModel, viewer) -> str:
    LanguageModel.summarize_extractions([record], viewer)
    return render_to_string("models_app/index.html#model-card", {"model": record, "oob": True})


def changed_rows(since: datetime) -> list[tuple[str, int, datetime]]:
    rows = []
    for kind, cls in JOB_KINDS.items():
        rows += [
            (kind, pk, at)
            for pk, at in cls.objects.filter(updated_at__gte=since - WATCH_MARGIN).values_list(
                "pk", "updated_at"
            )
        ]
    return rows


class Watcher:
    """One task per web process while at least one page is connected (see the module notes)."""

    listeners = 0
    task: asyncio.Task | None = None

    @classmethod
    def join(cls) -> None:
        cls.listeners += 1
        if cls.task is None or cls.task.done():
            cls.task = asyncio.get_running_loop().create_task(cls.run())

    @classmethod
    def leave(cls) -> None:
        cls.listeners = max(cls.listeners - 1, 0)
        if cls.listeners == 0 and cls.task is not None:
            cls.task.cancel()
            cls.task = None

    @classmethod
    async def run(cls) -> None:
        layer = get_channel_layer()
        fans_out = isinstance(layer, InMemoryChannelLayer)
        seen: dict[tuple[str, int], datetime] = {}
        since = timezone.now()
        loop = asyncio.get_running_loop()
        last_reap = 0.0
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                if loop.time() - last_reap >= REAP_INTERVAL:
                    last_reap = loop.time()
                    await database_sync_to_async(check_lost_jobs)()
                if not fans_out:
                    continue
                looked_at = timezone.now()
                for kind, pk, at in await database_sync_to_async(changed_rows)(since):
                    if seen.get((kind, pk)) != at:
                        seen[(kind, pk)] = at
                        await layer.group_send(
                            LIVE_GROUP,
                            {"type": "record.changed", "kind": kind, "pk": pk, "version": at.isoformat()},
                        )
                since = looked_at
                horizon = since - WATCH_MARGIN
                seen = {key: at for key, at in seen.items() if at >= horizon}
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a locked database now and then: look again next tick
                log.warning("live watcher: %s", exc)


websocket_urlpatterns = [path("ws/live/", LiveConsumer.as_asgi())]
