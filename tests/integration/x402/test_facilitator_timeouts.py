"""A facilitator too slow to answer, over real HTTP (the Venice sandbox and its facilitator in a
process of their own, the sandbox's latency fault past the shop's facilitator timeout): a
verify that times out charges nothing (503); a settle that times out after the money moved
charges once and hands out one key."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cheaptokens import inventory
from cheaptokens.config import Settings
from cheaptokens.models import Order
from cheaptokens.shop import Shop, build_shop
from cheaptokens.web.app import create_app
from support.agents import new_wallet, required_of, sign
from support.procs import sandbox
from support.shopkit import refresh

from .conftest import money_in

#: what the facilitator's answer is delayed by, and how long the shop waits for one
SLOW_MS, TIMEOUT_S = 1500, 0.5


@pytest.fixture(scope="module")
def venice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    with sandbox("VENICE_ADMIN_KEY_x402_timeouts_base:1", log=log) as url:
        yield url


@dataclass
class Live:
    shop: Shop
    web: TestClient
    root: str
    admin: str

    def fund(self, address: str, usdc: str) -> None:
        r = httpx.post(
            f"{self.root}/_sandbox/x402/wallets", json={"address": address, "usdc": usdc}
        )
        assert r.status_code == 200, r.text

    def usdc(self, address: str) -> Decimal:
        return Decimal(httpx.get(f"{self.root}/_sandbox/x402/wallets/{address}").json()["usdc"])

    def slow(self, path: str) -> None:
        rule = {"path": path, "latency_ms": SLOW_MS, "count": 1}
        assert httpx.post(f"{self.root}/_sandbox/faults", json=rule).is_success

    def offer(self) -> dict[str, Any]:
        r = self.web.post("/api/buy", json={"credit_cents": 500})
        assert r.status_code == 402, r.text
        return dict(required_of(r)["accepts"][0])

    def pay(self, header: str) -> httpx.Response:
        return self.web.post(
            "/api/buy", json={"credit_cents": 500}, headers={"PAYMENT-SIGNATURE": header}
        )

    def venice_keys(self, order_id: str) -> list[str]:
        keys = httpx.get(
            f"{self.root}/api/v1/api_keys", headers={"Authorization": f"Bearer {self.admin}"}
        ).json()["data"]
        return [k["id"] for k in keys if k["description"] == f"cheaptokens:{order_id}"]


@contextmanager
def live_shop(venice: str, db_url: str, tmp_path: Any) -> Iterator[Live]:
    root = venice.removesuffix("/api/v1")
    admin = f"VENICE_ADMIN_KEY_x402_timeouts_{uuid.uuid4().hex[:10]}"
    r = httpx.post(f"{root}/_sandbox/accounts", json={"admin_key": admin, "diem": 20})
    assert r.status_code in (200, 201), r.text
    settings = Settings(
        database_url=db_url,
        data_dir=tmp_path,
        public_url="http://testserver",
        venice_base_url=venice,
        venice_admin_keys=f"main={admin}",
        x402_facilitator_timeout_seconds=TIMEOUT_S,
        pool_size=0,
        repricing=False,
        orders_per_minute=10_000,
        quotes_per_minute=10_000,
        max_held_share=1,
    )
    shop = build_shop(settings)
    try:
        assert refresh(shop) == 1
        with TestClient(create_app(shop), base_url="http://testserver") as web:
            yield Live(shop, web, root, admin)
    finally:
        httpx.delete(f"{root}/_sandbox/faults")
        shop.close()


def test_a_verify_that_times_out_charges_nothing(venice, db_url, tmp_path):
    with live_shop(venice, db_url, tmp_path) as live:
        wallet = new_wallet()
        live.fund(wallet.address, "25.00")
        live.slow("/x402/verify")
        r = live.pay(sign(wallet, live.offer()))
        # Answered within its time the verify would have passed: the 503 is the timeout.
        assert r.status_code == 503, r.text
        assert "nothing was charged" in r.json()["error"]["message"]
        time.sleep(SLOW_MS / 1000)  # the slow verify has finished at the facilitator too
        assert live.usdc(wallet.address) == Decimal("25.00")
        assert money_in(live) == 0
        with live.shop.db.read() as s:
            orders = s.scalars(select(Order)).all()
            assert [o.status for o in orders] == ["cancelled"]
            assert inventory.supply(s, day=live.shop.clock().date()).sold_cents == 0
        assert live.venice_keys(orders[0].id) == []
        # The buyer tries again, with a new signature: one purchase, charged once.
        ok = live.pay(sign(wallet, live.offer()))
        assert ok.status_code == 200, ok.text
        assert (
            live.usdc(wallet.address) == Decimal("25.00") - Decimal(ok.json()["price_cents"]) / 100
        )


def test_a_settle_that_times_out_after_moving_the_money_charges_once(venice, db_url, tmp_path):
    with live_shop(venice, db_url, tmp_path) as live:
        wallet = new_wallet()
        live.fund(wallet.address, "25.00")
        live.slow("/x402/settle")
        r = live.pay(sign(wallet, live.offer()))
        # The first settle timed out (the facilitator moved the money after the shop gave up);
        # the request asked again with the same authorization and learned it had settled.
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "fulfilled" and body["key"]["api_key"]
        assert "PAYMENT-RESPONSE" in r.headers
        price = body["price_cents"]
        assert live.usdc(wallet.address) == Decimal("25.00") - Decimal(price) / 100
        assert money_in(live) == price
        with live.shop.db.read() as s:
            order = s.get(Order, body["order_id"])
            assert order is not None and order.paid_cents == price
            # One live key (a key made before an unknown settlement is deleted and made again).
            assert live.venice_keys(order.id) == [order.key_id]
