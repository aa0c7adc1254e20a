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
from cheaptokens.orders import flows
from cheaptokens.orders.transitions import Placed
from cheaptokens.payments import PaymentEvent
from cheaptokens.sandbox import AccountSpec, Sandbox
from cheaptokens.shop import Shop, build_shop
from cheaptokens.venice.client import VeniceClient
from cheaptokens.venice.types import ConsumptionLimit
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


# ------------------------------------------------------------------ use cases, wired from a Shop
# The application wires collaborators once (web handlers, the worker, the CLI); tests that
# drive a use case directly wire them here, in one place.


def refresh(shop: Shop) -> int:
    """Read every account's allocation from Venice (as upkeep does)."""
    return refresh_accounts(db=shop.db, gateways=shop.gateways, clock=shop.clock)


def place(
    shop: Shop,
    *,
    credit_cents: int | None = None,
    quote_id: str | None = None,
    idempotency_key: str | None = None,
    client: str | None = None,
) -> Placed:
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
    )


def apply_event(shop: Shop, event: PaymentEvent) -> None:
    flows.apply_payment_event(
        db=shop.db, provider=shop.payments.name, event=event, now=shop.clock()
    )


def request_refund(shop: Shop, order_id: str, reason: str = "test") -> None:
    flows.refund_order(db=shop.db, order_id=order_id, reason=reason, now=shop.clock())


def worker_of(shop: Shop, **kwargs: Any) -> Worker:
    return Worker.for_shop(shop, **kwargs)


def paid_order(shop: Shop, credit_cents: int = 300) -> str:
    """Place an order and pay it through the sandbox provider, as its checkout page would;
    returns the order id (the worker makes the key)."""
    placed = place(shop, credit_cents=credit_cents)
    assert placed.order.checkout_url is not None
    token = placed.order.checkout_url.rsplit("/", 1)[-1]
    apply_event(shop, shop.payments.outcome(token, "paid", shop.clock()))
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
    # Calls are billed at once (the sandbox's run time has tests of its own).
    sandbox = Sandbox(
        [AccountSpec(admin_key=k, diem=diem) for k in keys.values()],
        now=now,
        seconds_per_million_tokens=0,
    )
    url = database_url
    if url is None:
        url = f"sqlite:///{tmp_path / 'shop.db'}"
        migrate.upgrade(url)
    settings.setdefault("orders_per_minute", 10_000)  # the abuse brake is tested on its own
    settings.setdefault("quotes_per_minute", 10_000)
    settings.setdefault("max_held_share", 1)  # so is the cap on one client's unpaid holds
    settings.setdefault("overshoot_reserve_cents", 0)  # and the overshoot reserve
    settings.setdefault("venice_parallel_accounts", 1)  # one TestClient serves every account
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
    shop = build_shop(
        cfg,
        clock=sandbox.clock.now,
        http=venice_http,
        gateways=gateways,
        payments=payments,
        x402_http=venice_http,
    )
    refresh(shop)
    web = TestClient(create_app(shop), base_url="http://testserver")
    try:
        yield Kit(
            shop=shop, sandbox=sandbox, venice_http=venice_http, web=web, worker=worker_of(shop)
        )
    finally:
        web.close()
        venice_http.close()
        shop.close()


def chat(kit: Kit, key: str, model: str = "llama-3.3-70b", tokens: int = 10) -> Any:
    """One chat call on the kit's Venice sandbox with ``key``: a prompt of ``tokens`` words."""
    return kit.venice_http.post(
        "/api/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": model,
            "messages": [{"role": "user", "content": "w " * tokens}],
            "max_tokens": 1,
        },
    )


def operator_spends(
    kit: Kit, account: str, dollars: Decimal, *, model: str = "openai-gpt-54-pro"
) -> None:
    """The operator's own key (no cap) spends at least ``dollars`` of the account's DIEM, in
    calls of 250k tokens (below the model's long-context price tier: $9.38 each on the
    default model), waiting out the model's tokens-per-minute limit when it is reached."""
    gateway = kit.shop.gateways[account]
    own = gateway.create_key(description="operator's own", consumption_limit=ConsumptionLimit())

    def cents() -> int:
        return int((gateway.balance().diem or Decimal(0)) * 100)

    start = cents()
    while start - cents() < dollars * 100:
        r = chat(kit, own.api_key, model, 250_000)
        if r.status_code == 429:
            kit.sandbox.clock.advance(61)
            continue
        assert r.status_code == 200, r.text
