"""Request-scoped helpers: the shop and its collaborators from app state, the client's
identity, rate limits. Handlers declare the collaborators they use as dependencies."""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from cheaptokens.db import Database
from cheaptokens.orders import flows
from cheaptokens.orders.rules import ShopRules
from cheaptokens.orders.transitions import Placed
from cheaptokens.orders.webhooks import UrlPolicy
from cheaptokens.shop import Shop
from cheaptokens.web.limits import ShopLimits


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


def request_worker() -> str:
    """The worker name a request takes a job's lease under (an x402 purchase making its key)."""
    return f"web:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:64]


def limiter(request: Request) -> ShopLimits:
    """The app's rate limits (:mod:`cheaptokens.web.limits`)."""
    limits: ShopLimits = request.app.state.limiter
    return limits


def place_order(
    shop: Shop,
    *,
    quote_id: str | None,
    credit_cents: int | None,
    idempotency_key: str | None,
    client: str | None,
    key_models: str = "private",
    webhook_url: str | None = None,
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
        webhook_url=webhook_url,
        webhook_policy=webhook_policy(shop),
        box=shop.box,
    )


def webhook_policy(shop: Shop) -> UrlPolicy:
    """Which webhook URLs this shop calls: public addresses only in live mode."""
    return UrlPolicy.for_settings(shop.settings)
