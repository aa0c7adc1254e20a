"""Top-ups: more credit on the same key, paid at today's price, on the key's own account."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from cheaptokens.models import LedgerEntry, Order, Topup
from cheaptokens.venice.types import ConsumptionLimit
from cheaptokens.worker.topup import apply_topup
from support.shopkit import Kit, chat, make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def auth(order: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {order['order_token']}"}


def top_up(kit: Kit, order: dict[str, Any], cents: int, key: str | None = None) -> Any:
    headers = {**auth(order), "Idempotency-Key": key or str(uuid.uuid4())}
    return kit.web.post(
        f"/api/orders/{order['order_id']}/topups", json={"credit_cents": cents}, headers=headers
    )


def pay(kit: Kit, checkout_url: str) -> None:
    assert kit.web.post(checkout_url, json={"outcome": "paid"}).status_code == 200


def venice_cap(kit: Kit, order: dict[str, Any], account: str = "sandbox-1") -> Decimal:
    with kit.shop.db.read() as s:
        key_id = s.get(Order, order["order_id"]).key_id
    (key,) = [k for k in kit.shop.gateways[account].list_keys() if k.id == key_id]
    assert key.consumption_limits.diem is not None
    return key.consumption_limits.diem


def test_a_paid_top_up_raises_the_same_keys_cap(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order = kit.buy(500)
        kit.worker.drain()
        key = kit.status(order)["key"]["api_key"]
        ikey = str(uuid.uuid4())
        r = top_up(kit, order, 300, key=ikey)
        assert r.status_code == 201, r.text
        topup = r.json()
        assert topup["status"] == "awaiting_payment" and 0 < topup["price_cents"] < 300
        assert top_up(kit, order, 300, key=ikey).json()["topup_id"] == topup["topup_id"]
        assert top_up(kit, order, 200, key=ikey).status_code == 409  # same key, other body
        pay(kit, topup["checkout_url"])
        kit.worker.drain()
        body = kit.status(order)
        assert body["key"]["api_key"] == key  # the same key
        assert body["total_credit_cents"] == 800 and body["key"]["credit_cents"] == 800
        [shown] = body["topups"]
        assert shown["status"] == "applied" and shown["applied_at"]
        assert venice_cap(kit, order) == Decimal("8.00")
        supply = kit.web.get("/api/supply").json()
        assert supply["sold_cents"] == 800 and supply["reserved_cents"] == 0
        with kit.shop.db.read() as s:
            kinds = s.scalars(
                select(LedgerEntry.kind).where(LedgerEntry.order_id == order["order_id"])
            ).all()
        assert {"topup_placed", "payment_received", "topup_claimed", "topup_applied"} <= set(kinds)
        # The key spends past what it first had.
        for _ in range(8):
            assert chat(kit, key, tokens=100_000).status_code == 200  # 7 ¢ each with llama-3.3-70b


def test_no_room_on_the_keys_account_offers_a_new_key(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON, diem=Decimal("10"), accounts=2) as kit:
        order = kit.buy(600)
        kit.worker.drain()
        with kit.shop.db.read() as s:
            account = s.get(Order, order["order_id"]).account
        r = top_up(kit, order, 400)  # 850 − 600 = 250 left there; 850 on the other account
        assert r.status_code == 409
        error = r.json()["error"]
        assert error["code"] == "no_room_on_key_account" and "new key" in error["message"]
        assert kit.web.get("/api/supply").json()["reserved_cents"] == 0
        assert top_up(kit, order, 200).status_code == 201  # what fits is fine
        with kit.shop.db.read() as s:
            assert {t.account for t in s.scalars(select(Topup))} == {account}


def test_top_ups_need_a_live_key_of_today_and_the_orders_token(tmp_path):
    with make_kit(tmp_path, now=NOON) as kit:
        unpaid = kit.buy(300, pay=False)
        assert top_up(kit, unpaid, 100).status_code == 400
        order = kit.buy(300)
        kit.worker.drain()
        other = kit.buy(300)
        stolen = {**order, "order_token": other["order_token"]}
        assert top_up(kit, stolen, 100).status_code == 404
        assert top_up(kit, order, 50).status_code == 400  # below the minimum order
        kit.sandbox.clock.set(datetime(2026, 11, 26, 0, 0, 1, tzinfo=UTC))
        kit.worker.upkeep(force=True)
        assert top_up(kit, order, 100).status_code == 400  # the key expired at 00:00


def test_two_top_ups_racing_lose_no_update(tmp_path, db_url):
    """A's PATCH is held back until B has claimed, raised and finished: A then finds the
    database moved on and sets the latest cap — Venice ends with both top-ups."""
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order = kit.buy(500)
        kit.worker.drain()
        a = top_up(kit, order, 100).json()
        b = top_up(kit, order, 200).json()
        pay(kit, a["checkout_url"])
        pay(kit, b["checkout_url"])
        gateway = kit.shop.gateways["sandbox-1"]

        class Racing:
            """The gateway, but B's whole job runs just before A's first PATCH lands."""

            def __init__(self) -> None:
                self.raced = False

            def __getattr__(self, name: str) -> Any:
                return getattr(gateway, name)

            def update_key(self, key_id: str, **kw: Any) -> Any:
                if not self.raced:
                    self.raced = True
                    run(b["topup_id"], {"sandbox-1": gateway})
                return gateway.update_key(key_id, **kw)

        def run(topup_id: str, gateways: dict[str, Any]) -> None:
            apply_topup(
                db=kit.shop.db,
                gateways=gateways,
                rules=kit.shop.rules,
                clock=kit.now,
                topup_id=topup_id,
            )

        run(a["topup_id"], {"sandbox-1": Racing()})
        assert venice_cap(kit, order) == Decimal("8.00")
        body = kit.status(order)
        assert body["key"]["credit_cents"] == 800
        assert [t["status"] for t in body["topups"]] == ["applied", "applied"]


def test_a_cap_that_cannot_be_raised_in_time_is_refunded(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order = kit.buy(500)
        kit.worker.drain()
        topup = top_up(kit, order, 300).json()
        kit.sandbox.faults.add(
            {"method": "PATCH", "path": "/api/v1/api_keys", "status": 503, "count": None}
        )
        pay(kit, topup["checkout_url"])
        kit.worker.drain()
        assert kit.status(order)["topups"][0]["status"] == "paid"  # still trying
        kit.sandbox.clock.advance(kit.shop.rules.provision_deadline.total_seconds() + 1)
        kit.sandbox.faults.clear()
        for _ in range(5):
            kit.worker.drain()
            kit.sandbox.clock.advance(61)
        body = kit.status(order)
        assert body["topups"][0]["status"] == "refunded"
        assert body["key"]["credit_cents"] == 500 and body["total_credit_cents"] == 500
        assert venice_cap(kit, order) == Decimal("5.00")
        assert kit.web.get("/api/supply").json()["sold_cents"] == 500
        with kit.shop.db.read() as s:
            money = s.scalars(
                select(LedgerEntry.money_cents).where(
                    LedgerEntry.order_id == order["order_id"], LedgerEntry.kind == "refunded"
                )
            ).all()
        assert money == [-topup["price_cents"]]


def test_a_pro_rata_refund_counts_the_top_ups(tmp_path):
    with make_kit(tmp_path, now=NOON, diem=Decimal("20")) as kit:
        order = kit.buy(500)
        kit.worker.drain()
        topup = top_up(kit, order, 300).json()
        pay(kit, topup["checkout_url"])
        kit.worker.drain()
        key = kit.status(order)["key"]["api_key"]
        assert chat(kit, key, tokens=100_000).status_code == 200
        # The operator's own key drains the only account: no stock for a replacement.
        own = kit.shop.gateways["sandbox-1"].create_key(
            description="operator's own", consumption_limit=ConsumptionLimit()
        )
        while (kit.shop.gateways["sandbox-1"].balance().diem or 0) > 0:
            kit.venice_http.post(
                "/api/v1/chat/completions",
                headers={"Authorization": f"Bearer {own.api_key}"},
                json={
                    "model": "openai-gpt-54-pro",
                    "messages": [{"role": "user", "content": "w " * 250_000}],
                    "max_tokens": 1,
                },
            )
            kit.sandbox.clock.advance(61)  # past the model's tokens-per-minute window
        kit.worker.watch_now()
        kit.worker.drain()
        body = kit.status(order)
        assert body["status"] == "refunded"
        with kit.shop.db.read() as s:
            o = s.get(Order, order["order_id"])
            unspent, paid = o.key_cap_cents, o.paid_cents + topup["price_cents"]
            money = s.scalars(
                select(LedgerEntry.money_cents).where(
                    LedgerEntry.order_id == order["order_id"], LedgerEntry.kind == "refunded"
                )
            ).all()
        assert 0 < unspent < 800
        due = -(-paid * unspent // 800)
        first = min(due, o.paid_cents)
        assert body["replacement"]["refund_due_cents"] == due
        assert sorted(money) == sorted([-first, -(due - first)])
        assert body["topups"][0]["status"] == "refunded"


def test_top_up_checkout_that_lapses_releases_its_credit(tmp_path):
    with make_kit(tmp_path, now=NOON) as kit:
        order = kit.buy(500)
        kit.worker.drain()
        top_up(kit, order, 300)
        assert kit.web.get("/api/supply").json()["reserved_cents"] == 300
        kit.sandbox.clock.advance(timedelta(minutes=6).total_seconds())
        kit.worker.upkeep(force=True)
        assert kit.web.get("/api/supply").json()["reserved_cents"] == 0
        assert kit.status(order)["topups"][0]["status"] == "cancelled"
