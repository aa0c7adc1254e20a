"""Concurrent buyers racing for the last dollars never oversell (threads, real databases).

The multi-process variant (2 web + 2 worker processes, 200 buyers) is in
``tests/reliability``; this one races many sessions inside one process.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select

from cheaptokens.errors import SoldOut
from cheaptokens.models import AccountDay
from cheaptokens.orders import flows
from support.shopkit import make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_concurrent_quotes_never_exceed_capacity(tmp_path, db_url):
    # Two accounts of 10 DIEM: 2 × ($9 − $0.50 of the $1 margin) = $17 in all.
    with make_kit(tmp_path, database_url=db_url, now=NOON, diem=Decimal("10"), accounts=2) as kit:
        capacity = kit.web.get("/api/supply").json()["capacity_cents"]
        assert capacity == 1700

        def attempt(_i: int) -> int:
            try:
                quote = flows.new_quote(
                    db=kit.shop.db, rules=kit.shop.rules, credit_cents=300, now=kit.now()
                )
                return quote.credit_cents
            except SoldOut:
                return 0

        with ThreadPoolExecutor(max_workers=16) as pool:
            got = list(pool.map(attempt, range(40)))
        reserved = sum(got)
        assert reserved <= capacity
        # A $3 key must fit on one account ($8.50 of room each): 2 + 2 quotes, and the
        # $2.50 left on each account cannot take a third.
        assert got.count(300) == 4
        with kit.shop.db.read() as s:
            rows = s.scalars(select(AccountDay)).all()
        for row in rows:
            assert row.sold_cents + row.reserved_cents <= row.capacity_cents
        assert sum(r.reserved_cents for r in rows) == reserved


def test_concurrent_orders_and_payments_never_oversell(tmp_path, pg_url):
    with make_kit(tmp_path, database_url=pg_url, now=NOON, diem=Decimal("20")) as kit:
        capacity = kit.web.get("/api/supply").json()["capacity_cents"]  # $17

        def buy(i: int) -> int:
            from starlette.testclient import TestClient

            from cheaptokens.web.app import create_app

            # Thirty buyers, each from an address of its own.
            with TestClient(create_app(kit.shop), client=(f"10.0.0.{i}", 1)) as web:
                r = web.post("/api/orders", json={"credit_cents": 200})
                if r.status_code == 409:  # sold out, or what is left held by others' checkouts
                    assert r.json()["error"]["code"] in ("sold_out", "held_out")
                    return 0
                assert r.status_code == 201, r.text
                paid = web.post(r.json()["checkout_url"], json={"outcome": "paid"})
                assert paid.status_code == 200
                return 200

        with ThreadPoolExecutor(max_workers=12) as pool:
            got = list(pool.map(buy, range(30)))
        assert sum(got) == (capacity // 200) * 200
        kit.worker.drain()
        sup = kit.web.get("/api/supply").json()
        assert sup["sold_cents"] == sum(got) <= capacity
        keys = [
            k
            for k in kit.shop.gateways["sandbox-1"].list_keys()
            if k.description.startswith("cheaptokens:")
        ]
        assert len(keys) == got.count(200)
