"""Request-scoped helpers: the shop and its collaborators from app state, the client's
identity, rate limits. Handlers declare the collaborators they use as dependencies."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from cheaptokens.db import Database
from cheaptokens.errors import RateLimited
from cheaptokens.orders import flows
from cheaptokens.orders.rules import ShopRules
from cheaptokens.orders.transitions import Placed
from cheaptokens.shop import Shop


def get_shop(request: Request) -> Shop:
    shop: Shop = request.app.state.shop
    return shop


def get_db(request: Request) -> Database:
    return get_shop(request).db


def get_rules(request: Request) -> ShopRules:
    return get_shop(request).rules


def get_now(request: Request) -> datetime:
    """The shop's clock, read once per request."""
    return get_shop(request).clock()


ShopDep = Annotated[Shop, Depends(get_shop)]
DbDep = Annotated[Database, Depends(get_db)]
RulesDep = Annotated[ShopRules, Depends(get_rules)]
NowDep = Annotated[datetime, Depends(get_now)]


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


def place_order(
    shop: Shop,
    *,
    quote_id: str | None,
    credit_cents: int | None,
    idempotency_key: str | None,
    client: str | None,
    key_models: str = "private",
) -> Placed:
    """:func:`flows.new_order`, wired from the shop (the JSON API and the buy form use it)."""
    return flows.new_order(
        db=shop.db,
        rules=shop.rules,
        payments=shop.payments,
        token_key=shop.token_key,
        public_url=shop.settings.public_url,
        clock=shop.clock,
        quote_id=quote_id,
        credit_cents=credit_cents,
        idempotency_key=idempotency_key,
        client=client,
        key_models=key_models,
    )
