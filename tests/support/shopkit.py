"""Build a complete shop for tests: real database, the Venice sandbox, sandbox payments.

The shop's clock is the sandbox's clock, so moving one moves both (as ``cheaptokens
serve`` does offline). Venice is reached in-process through Starlette's TestClient,
with the real :class:`VeniceClient` on top.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.testclient import TestClient

from cheaptokens import migrate
from cheaptokens.config import SANDBOX_ADMIN_KEY, Settings
from cheaptokens.sandbox import AccountSpec, Sandbox
from cheaptokens.shop import Shop, build_shop
from cheaptokens.venice.client import VeniceClient
from cheaptokens.web.app import create_app
from cheaptokens.worker.maintenance import refresh_accounts
from cheaptokens.worker.runner import Worker

SANDBOX_URL = "http://sandbox.test/api/v1"


@dataclass
class Kit:
    shop: Shop
    sandbox: Sandbox
    venice_http: TestClient
    web: TestClient
    worker: Worker

    def now(self) -> datetime:
        return self.sandbox.clock.now()

    def buy(self, credit_cents: int = 500, *, pay: bool = True) -> dict[str, Any]:
        """Quote, order and (optionally) pay through the public API; returns the order JSON."""
        quote = self.web.post("/api/quotes", json={"credit_cents": credit_cents})
        assert quote.status_code == 201, quote.text
        order = self.web.post("/api/orders", json={"quote_id": quote.json()["quote_id"]})
        assert order.status_code == 201, order.text
        body: dict[str, Any] = order.json()
        if pay:
            paid = self.web.post(body["checkout_url"], json={"outcome": "paid"})
            assert paid.status_code == 200, paid.text
        return body

    def status(self, order: dict[str, Any]) -> dict[str, Any]:
        r = self.web.get(
            f"/api/orders/{order['order_id']}",
            headers={"Authorization": f"Bearer {order['order_token']}"},
        )
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result


def paid_order(shop: Shop, credit_cents: int = 300) -> str:
    """Place an order and pay it through the sandbox provider, as its checkout page would;
    returns the order id (the worker makes the key)."""
    from cheaptokens.orders import flows

    placed = flows.new_order(
        shop, quote_id=None, credit_cents=credit_cents, idempotency_key=None, client=None
    )
    assert placed.order.checkout_url is not None
    token = placed.order.checkout_url.rsplit("/", 1)[-1]
    flows.apply_payment_event(shop, shop.payments.outcome(token, "paid", shop.clock()))
    return placed.order.id


def venice_gateways(sandbox_http: TestClient, accounts: dict[str, str]) -> dict[str, Any]:
    return {
        name: VeniceClient(sandbox_http, key, base_url=SANDBOX_URL, sleep=lambda _s: None)
        for name, key in accounts.items()
    }


@contextmanager
def make_kit(
    tmp_path: pathlib.Path,
    *,
    database_url: str | None = None,
    now: datetime | None = None,
    diem: Decimal = Decimal("100"),
    accounts: int = 1,
    wrap: Any = None,
    payments: Any = None,
    **settings: Any,
) -> Iterator[Kit]:
    keys = {
        f"sandbox-{i + 1}": SANDBOX_ADMIN_KEY if i == 0 else f"VENICE_ADMIN_KEY_sandbox_{i:04d}"
        for i in range(accounts)
    }
    sandbox = Sandbox([AccountSpec(admin_key=k, diem=diem) for k in keys.values()], now=now)
    url = database_url
    if url is None:
        url = f"sqlite:///{tmp_path / 'shop.db'}"
        migrate.upgrade(url)
    settings.setdefault("orders_per_minute", 10_000)  # the abuse brake is tested on its own
    settings.setdefault("quotes_per_minute", 10_000)
    settings.setdefault("pool_size", 0)  # the warm pool has tests of its own
    settings.setdefault("repricing", False)  # so does the hourly re-plan
    settings.setdefault("pricing_cache_seconds", 0)  # tests move the clock by hand
    cfg = Settings(
        database_url=url,
        data_dir=tmp_path,
        public_url="http://testserver",
        venice_base_url=SANDBOX_URL,
        **settings,
    )
    venice_http = TestClient(sandbox.app, base_url="http://sandbox.test")
    gateways = venice_gateways(venice_http, keys)
    if wrap is not None:  # e.g. a gateway that crashes at a chosen step
        gateways = {name: wrap(gw) for name, gw in gateways.items()}
    shop = build_shop(cfg, clock=sandbox.clock.now, gateways=gateways, payments=payments)
    refresh_accounts(shop)
    web = TestClient(create_app(shop), base_url="http://testserver")
    try:
        yield Kit(shop=shop, sandbox=sandbox, venice_http=venice_http, web=web, worker=Worker(shop))
    finally:
        web.close()
        venice_http.close()
        shop.close()
