"""A one-second cache of ``GET /api/pricing`` per process.

The price moves with the clock and with sales; within one second the clock moves it by
far less than a cent per dollar, so each process recomputes it at most once a second
(the body carries ``now``, the moment it was computed). Concurrent requests for a stale
price wait for one recomputation instead of each starting their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

TTL_SECONDS = 1.0


class PriceCache:
    def __init__(self, build: Callable[[], bytes], *, ttl: float = TTL_SECONDS) -> None:
        self._build = build
        self._ttl = ttl
        self._body = b""
        self._at = -1e9
        self._lock: asyncio.Lock | None = None

    def invalidate(self) -> None:
        self._at = -1e9

    async def get(self) -> bytes:
        if self._ttl <= 0:
            return await run_in_threadpool(self._build)
        if time.monotonic() - self._at < self._ttl:
            return self._body
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if time.monotonic() - self._at >= self._ttl:  # nobody refreshed it meanwhile
                started = time.monotonic()
                self._body = await run_in_threadpool(self._build)
                self._at = started
        return self._body
