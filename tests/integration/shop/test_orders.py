"""Orders through the API on SQLite and PostgreSQL: payment outcomes, idempotency, sold out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select
from starlette.testclient import TestClient

from cheaptokens.models import LedgerEntry, Order
from support.shopkit import make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def supply(kit):
    return kit.web.get("/api/supply").json()


def test_paid_order_gets_exactly_one_key(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order = kit.buy(700)
        kit.worker.drain()
        body = kit.status(order)
        assert body["status"] == "fulfilled"
        assert body["key"]["api_key"].startswith("VENICE_INFERENCE_KEY_")
        keys = [
            k
            for k in kit.shop.gateways["sandbox-1"].list_keys()
            if k.description == f"cheaptokens:{order['order_id']}"
        ]
        assert len(keys) == 1 and keys[0].consumption_limits.diem == Decimal("7")
        with kit.shop.db.read() as s:
            kinds = s.scalars(
                select(LedgerEntry.kind)
                .where(LedgerEntry.order_id == order["order_id"])
                .order_by(LedgerEntry.id)
            ).all()
        assert kinds == [
            "order_placed",
            "payment_received",
            "credit_sold",
            "key_create_attempt",
            "key_created",
        ]


def test_declined_checkout_releases_credit(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        start = supply(kit)
        order = kit.buy(900, pay=False)
        assert supply(kit)["reserved_cents"] == start["reserved_cents"] + 900
        r = kit.web.post(order["checkout_url"], json={"outcome": "declined"})
        assert r.status_code == 200 and r.json()["result"] == "failed"
        assert kit.status(order)["status"] == "cancelled"
        assert supply(kit) == start


def test_idempotency_key_returns_the_same_order(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        a = kit.web.post("/api/orders", json={"credit_cents": 400}, headers=headers)
        b = kit.web.post("/api/orders", json={"credit_cents": 400}, headers=headers)
        assert a.status_code == b.status_code == 201
        assert a.json() == b.json()
        assert supply(kit)["reserved_cents"] == 400
        c = kit.web.post("/api/orders", json={"credit_cents": 500}, headers=headers)
        assert c.status_code == 409 and c.json()["error"]["field"] == "Idempotency-Key"


def test_another_clients_idempotency_key_never_finds_an_order(tmp_path, db_url):
    """The attack: a second client replays the first one's key and body to get its token."""
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        mine = kit.web.post("/api/orders", json={"credit_cents": 400}, headers=headers).json()
        thief = TestClient(kit.web.app, base_url="http://testserver", client=("10.9.9.9", 1))
        theirs = thief.post("/api/orders", json={"credit_cents": 400}, headers=headers)
        assert theirs.status_code == 201  # a new order of their own, nothing of mine
        assert theirs.json()["order_id"] != mine["order_id"]
        assert theirs.json()["order_token"] != mine["order_token"]
        assert supply(kit)["reserved_cents"] == 800


def test_idempotency_keys_must_be_random_uuids(tmp_path):
    with make_kit(tmp_path, now=NOON) as kit:
        for bad in ("my-order-0001", "1", str(uuid.uuid1()), str(uuid.uuid4()).upper() + "x"):
            r = kit.web.post(
                "/api/orders", json={"credit_cents": 400}, headers={"Idempotency-Key": bad}
            )
            assert r.status_code == 400, bad
            assert r.json()["error"]["field"] == "Idempotency-Key"
            assert "random UUID" in r.json()["error"]["message"]
        assert supply(kit)["reserved_cents"] == 0
        ok = kit.web.post(
            "/api/orders",
            json={"credit_cents": 400},
            headers={"Idempotency-Key": str(uuid.uuid4()).upper()},
        )
        assert ok.status_code == 201


def test_sold_out_says_so_and_when_credit_returns(tmp_path, db_url):
    # 100 DIEM × 0.9 − $1 margin = $89 of capacity.
    with make_kit(tmp_path, database_url=db_url, now=NOON, max_order_cents=10_000) as kit:
        assert supply(kit)["capacity_cents"] == 8900
        kit.buy(8900)
        r = kit.web.post("/api/quotes", json={"credit_cents": 100})
        assert r.status_code == 409
        err = r.json()["error"]
        assert err["code"] == "sold_out" and err["returns_at"] == "2026-11-26T00:00:00Z"
        assert supply(kit)["sold_out"] is True


def test_checkout_expiry_then_late_payment_is_sold_if_room(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON, checkout_ttl_seconds=120) as kit:
        order = kit.buy(500, pay=False)
        kit.sandbox.clock.advance(121)
        kit.worker.upkeep(force=True)
        assert kit.status(order)["status"] == "cancelled"
        assert supply(kit)["reserved_cents"] == 0
        # The sandbox checkout refuses payment after expiry (as Stripe would).
        r = kit.web.post(order["checkout_url"], json={"outcome": "paid"})
        assert r.json()["result"] == "expired"
        assert kit.status(order)["status"] == "cancelled"


def test_payment_amount_mismatch_is_refunded(tmp_path, db_url):
    from cheaptokens.payments import PaymentEvent
    from support.shopkit import apply_event

    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order = kit.buy(500, pay=False)
        apply_event(
            kit.shop,
            PaymentEvent(
                event_id="evt_short",
                kind="paid",
                order_id=order["order_id"],
                reference="x",
                payment_ref="sbpay_x",
                amount_cents=order["price_cents"] - 1,
                currency="usd",
                occurred_at=kit.now(),
            ),
        )
        kit.worker.drain()
        assert kit.status(order)["status"] == "refunded"
        assert supply(kit)["sold_cents"] == 0 and supply(kit)["reserved_cents"] == 0
        assert not [
            k
            for k in kit.shop.gateways["sandbox-1"].list_keys()
            if k.description.startswith("cheaptokens:")
        ]


def test_bad_input_is_rejected_and_changes_nothing(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        cases = [
            ({"credit_cents": -5}, "credit_cents"),
            ({"credit_cents": 10**12}, "credit_cents"),
            ({"credit_cents": "500"}, "credit_cents"),
            ({"credit_cents": 5.5}, "credit_cents"),
            ({"credit_cents": 500, "extra": 1}, "extra"),
            ({}, "credit_cents"),
        ]
        for body, field in cases:
            r = kit.web.post("/api/quotes", json=body)
            assert 400 <= r.status_code < 500, (body, r.text)
            assert r.json()["error"]["field"] == field, (body, r.json())
        r = kit.web.post("/api/orders", json={"quote_id": "q_nope"})
        assert r.status_code == 404 and r.json()["error"]["field"] == "quote_id"
        with kit.shop.db.read() as s:
            assert s.scalar(select(func.count()).select_from(Order)) == 0
        assert supply(kit)["reserved_cents"] == 0


def test_a_second_different_payment_is_refunded(tmp_path, db_url):
    from cheaptokens.models import StrayPayment
    from cheaptokens.payments import PaymentEvent
    from support.shopkit import apply_event

    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order = kit.buy(500)
        kit.worker.drain()
        second = PaymentEvent(
            event_id="evt_second_payment",
            kind="paid",
            order_id=order["order_id"],
            reference="x",
            payment_ref="sbpay_second_payment_for_the_same_order",
            amount_cents=order["price_cents"],
            currency="usd",
            occurred_at=kit.now(),
        )
        apply_event(kit.shop, second)
        apply_event(kit.shop, second)  # redelivered: still one refund
        kit.worker.drain()
        with kit.shop.db.read() as s:
            rows = s.scalars(select(StrayPayment)).all()
            kinds = s.scalars(
                select(LedgerEntry.kind).where(LedgerEntry.order_id == order["order_id"])
            ).all()
        assert len(rows) == 1 and rows[0].refunded_at is not None and rows[0].refund_ref
        assert kinds.count("stray_payment_refunded") == 1
        assert kit.status(order)["status"] == "fulfilled"  # the first payment keeps its key
        assert supply(kit)["sold_cents"] == 500
