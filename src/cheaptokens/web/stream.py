"""``GET /api/pricing/stream``: the live price as server-sent events.

One ticker per app computes the price once per interval and every open stream is handed
the same bytes, so a thousand watchers cost one database read a tick, not a thousand.
The ticker runs only while someone is watching.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from cheaptokens.shop import Shop

router = APIRouter(tags=["shop"])

INTERVAL_SECONDS = 2.0
KEEPALIVE = b": keep-alive\n\n"


class PriceTicker:
    def __init__(self, shop: Shop, *, interval: float = INTERVAL_SECONDS) -> None:
        self.shop = shop
        self.interval = interval
        self.version = 0
        self.latest = b""
        self.watchers = 0
        self._cond: asyncio.Condition | None = None
        self._task: asyncio.Task[None] | None = None

    def _event(self) -> bytes:
        from cheaptokens.web.api import pricing

        body = pricing(self.shop).model_dump_json(exclude={"params", "formula"})
        return f"event: price\ndata: {body}\n\n".encode()

    async def _run(self) -> None:
        assert self._cond is not None
        while self.watchers > 0:
            try:
                event = await run_in_threadpool(self._event)
            except Exception:  # the database blinked: keep the streams open, try next tick
                event = KEEPALIVE
            async with self._cond:
                self.latest, self.version = event, self.version + 1
                self._cond.notify_all()
            await asyncio.sleep(self.interval)
        self._task = None

    async def events(self) -> AsyncIterator[bytes]:
        if self._cond is None:
            self._cond = asyncio.Condition()
        self.watchers += 1
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        seen = self.version if self.latest else -1
        try:
            yield b"retry: 5000\n\n"
            while True:
                async with self._cond:
                    await self._cond.wait_for(lambda s=seen: self.version != s)  # type: ignore[misc]
                    seen, event = self.version, self.latest
                yield event
        finally:
            self.watchers -= 1


@router.get(
    "/api/pricing/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "price events"}},
)
async def pricing_stream(request: Request) -> StreamingResponse:
    """Server-sent events: ``event: price`` with the fields of ``GET /api/pricing``
    (without ``params`` and ``formula``), every two seconds."""
    ticker: PriceTicker = request.app.state.ticker
    return StreamingResponse(
        ticker.events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
