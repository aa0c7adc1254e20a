"""Request-scoped helpers: the shop from app state, the client's identity, rate limits."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque

from fastapi import Request

from cheaptokens.errors import RateLimited
from cheaptokens.shop import Shop


def get_shop(request: Request) -> Shop:
    shop: Shop = request.app.state.shop
    return shop


def client_id(request: Request) -> str:
    """A short hash of the client's address: enough for rate limits, not a stored IP."""
    host = request.client.host if request.client else "unknown"
    return hashlib.sha256(host.encode()).hexdigest()[:16]


class SlidingWindow:
    """At most N events per client per 60 s, per process (a coarse abuse brake)."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, bucket: str, client: str, per_minute: int) -> None:
        now = time.monotonic()
        with self._lock:
            q = self._events.setdefault((bucket, client), deque())
            while q and now - q[0] >= 60:
                q.popleft()
            if len(q) >= per_minute:
                retry = int(60 - (now - q[0])) + 1
                raise RateLimited(
                    f"too many {bucket} requests from this client; wait {retry} s and try again",
                    retry_after=retry,
                )
            q.append(now)


def limiter(request: Request) -> SlidingWindow:
    window: SlidingWindow = request.app.state.limiter
    return window
