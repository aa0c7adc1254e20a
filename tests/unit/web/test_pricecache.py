"""The one-second price cache: reuse within the TTL, one rebuild for many waiters."""

from __future__ import annotations

import asyncio
import threading
import time

from cheaptokens.web.pricecache import PriceCache


def counting_builder(delay: float = 0.0):
    calls = {"n": 0}
    lock = threading.Lock()

    def build() -> bytes:
        with lock:
            calls["n"] += 1
            n = calls["n"]
        time.sleep(delay)
        return f'{{"v": {n}}}'.encode()

    return build, calls


def test_reuses_within_ttl_and_rebuilds_after_invalidate():
    build, calls = counting_builder()
    cache = PriceCache(build, ttl=60)

    async def scenario():
        a = await cache.get()
        b = await cache.get()
        cache.invalidate()
        c = await cache.get()
        return a, b, c

    a, b, c = asyncio.run(scenario())
    assert a == b == b'{"v": 1}' and c == b'{"v": 2}' and calls["n"] == 2


def test_many_concurrent_waiters_share_one_rebuild():
    build, calls = counting_builder(delay=0.05)
    cache = PriceCache(build, ttl=60)

    async def scenario():
        return await asyncio.gather(*(cache.get() for _ in range(50)))

    bodies = asyncio.run(scenario())
    assert set(bodies) == {b'{"v": 1}'} and calls["n"] == 1


def test_ttl_zero_always_rebuilds():
    build, _calls = counting_builder()
    cache = PriceCache(build, ttl=0)

    async def scenario():
        return [await cache.get() for _ in range(3)]

    assert asyncio.run(scenario()) == [b'{"v": 1}', b'{"v": 2}', b'{"v": 3}']
