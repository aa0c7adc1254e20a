"""One-call purchases with x402: the SDK's httpx client and a throw-away wallet buy a key."""

from __future__ import annotations

import time
from decimal import Decimal

import openai
import pytest
from sqlalchemy import select

from cheaptokens import inventory
from cheaptokens.models import LedgerEntry
from cheaptokens.orders import flows
from cheaptokens.times import iso_z, next_midnight
from support.agents import agent_post, balance, fund, new_wallet
from support.shopkit import make_kit


@pytest.fixture
def kit(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url) as k:
        yield k


def test_an_agent_buys_a_key_in_one_call_and_uses_it(kit):
    wallet = new_wallet()
    fund(kit.sandbox, wallet.address, "25.00")
    r = agent_post(kit, wallet, "/api/buy", {"credit_cents": 500})
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"order_id", "order_token", "status", "credit_cents", "price_cents"} <= set(body)
    assert set(body["key"]) == {"api_key", "base_url", "expires_at", "credit_cents"}
    assert body["key"]["expires_at"] == iso_z(next_midnight(kit.now()))
    assert body["status"] == "fulfilled"
    assert body["credit_cents"] == 500
    assert body["key"]["credit_cents"] == 500
    assert "PAYMENT-RESPONSE" in r.headers
    paid = Decimal(body["price_cents"]) / 100
    assert balance(kit.sandbox, wallet.address) == Decimal("25.00") - paid
    key = body["key"]
    client = openai.OpenAI(
        api_key=key["api_key"], base_url=key["base_url"], http_client=kit.venice_http
    )
    chat = client.chat.completions.create(
        model="llama-3.3-70b", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.usage.completion_tokens > 0


def test_the_app_asks_the_facilitator_for_supported_at_start_not_at_the_first_sale(kit):
    from fastapi.testclient import TestClient

    from cheaptokens.web.app import create_app

    assert not kit.shop.x402.ready
    with TestClient(create_app(kit.shop)):
        deadline = time.monotonic() + 10
        while not kit.shop.x402.ready and time.monotonic() < deadline:
            time.sleep(0.02)
        assert kit.shop.x402.ready


def test_a_facilitator_down_at_start_is_asked_again_by_the_first_sale(kit):
    kit.sandbox.faults.add({"path": "/x402/supported", "status": 500, "count": 1})
    assert kit.shop.x402.warm() is False and not kit.shop.x402.ready
    wallet = new_wallet()
    fund(kit.sandbox, wallet.address, "25.00")
    r = agent_post(kit, wallet, "/api/buy", {"credit_cents": 500})
    assert r.status_code == 200, r.text
    assert kit.shop.x402.ready


def test_an_x402_sale_counts_as_a_card_sale_does(kit):
    """Stock, price, ledger, dashboard and the order's own reads: an x402 purchase and a card
    purchase of the same credit leave the same marks (the x402 one also its authorization)."""
    kit.sandbox.clock.set(kit.now(), frozen=True)  # the price moves with the hour too
    before = kit.web.get("/api/pricing").json()
    card = kit.buy(500)
    kit.worker.drain()
    assert kit.status(card)["status"] == "fulfilled"
    after_card = kit.web.get("/api/pricing").json()
    wallet = new_wallet()
    fund(kit.sandbox, wallet.address, "25.00")
    r = agent_post(kit, wallet, "/api/buy", {"credit_cents": 500})
    assert r.status_code == 200, r.text
    agent = r.json()
    after_agent = kit.web.get("/api/pricing").json()
    # Stock and price: each sale took 500 cents off what is left, and the price followed.
    assert before["remaining_cents"] - after_card["remaining_cents"] == 500
    assert after_card["remaining_cents"] - after_agent["remaining_cents"] == 500
    with kit.shop.db.read() as s:
        supply = inventory.supply(s, day=kit.now().date())
        assert (supply.sold_cents, supply.reserved_cents) == (1000, 0)

        def ledger(order_id: str) -> tuple[list[str], int, int]:
            rows = s.scalars(select(LedgerEntry).where(LedgerEntry.order_id == order_id)).all()
            sold = sum(e.credit_cents or 0 for e in rows if e.kind == "credit_sold")
            return sorted(e.kind for e in rows), sum(e.money_cents or 0 for e in rows), sold

        card_kinds, card_money, card_sold = ledger(card["order_id"])
        agent_kinds, agent_money, agent_sold = ledger(agent["order_id"])
    assert sorted([*card_kinds, "payment_authorized"]) == agent_kinds
    assert (card_money, card_sold) == (kit.status(card)["price_cents"], 500)
    assert (agent_money, agent_sold) == (agent["price_cents"], 500)
    # The dashboard counts both.
    board = flows.dashboard(db=kit.shop.db, rules=kit.shop.rules, now=kit.now())
    assert (board.today.credit_sold_cents, board.today.orders) == (1000, 2)
    assert board.today.revenue_cents == card_money + agent_money
    assert {o.id: o.status for o in board.orders} == {
        card["order_id"]: "fulfilled",
        agent["order_id"]: "fulfilled",
    }
    # The order reads as a card order does: its token, the key until receipt, then gone.
    seen = kit.status(agent)
    assert seen["key"]["api_key"] == agent["key"]["api_key"]
    r = kit.web.post(
        f"/api/orders/{agent['order_id']}/received",
        headers={"Authorization": f"Bearer {agent['order_token']}"},
    )
    assert r.status_code == 200
    assert kit.status(agent)["key"]["api_key"] is None
