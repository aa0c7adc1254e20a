"""The warm pool: keys made ahead with cap 0, sold by raising their cap with PATCH."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from cheaptokens.models import LedgerEntry, PoolKey
from support.shopkit import make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def pool_rows(kit, status=None):
    with kit.shop.db.read() as s:
        stmt = select(PoolKey)
        if status:
            stmt = stmt.where(PoolKey.status == status)
        return s.scalars(stmt).all()


def venice_keys(kit):
    return {k.id: k for k in kit.shop.gateways["sandbox-1"].list_keys()}


def test_refill_makes_capped_keys_that_are_not_sold_capacity(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON, pool_size=4) as kit:
        before = kit.web.get("/api/supply").json()
        kit.worker.upkeep(force=True)
        ready = pool_rows(kit, "ready")
        assert len(ready) == 4
        keys = venice_keys(kit)
        for row in ready:
            key = keys[row.key_id]
            assert key.description.startswith("cheaptokens:pool:")
            assert key.consumption_limits.diem == 0 and key.consumption_limits.usd == 0
            assert key.expires_at == datetime(2026, 11, 26, tzinfo=UTC)
            assert kit.shop.box.open(row.secret, context=row.key_id).endswith(row.last6)
        assert kit.web.get("/api/supply").json() == before
        # A pool key can spend nothing before it is sold.
        secret = kit.shop.box.open(ready[0].secret, context=ready[0].key_id)
        r = kit.venice_http.post(
            "/api/v1/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 402


def test_a_sale_raises_a_pool_keys_cap_instead_of_creating(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON, pool_size=3) as kit:
        kit.worker.upkeep(force=True)
        pooled = {r.key_id for r in pool_rows(kit, "ready")}
        order = kit.buy(700)
        kit.worker.drain()
        body = kit.status(order)
        assert body["status"] == "fulfilled"
        sold = [r for r in pool_rows(kit) if r.status == "sold"]
        assert len(sold) == 1 and sold[0].key_id in pooled
        assert sold[0].order_id == order["order_id"]
        key = kit.shop.gateways["sandbox-1"].get_key(sold[0].key_id)
        assert key.description == f"cheaptokens:{order['order_id']}"
        assert key.consumption_limits.diem == Decimal("7") and key.consumption_limits.usd == 0
        assert body["key"]["last6"] == key.last6
        with kit.shop.db.read() as s:
            kinds = s.scalars(
                select(LedgerEntry.kind).where(LedgerEntry.order_id == order["order_id"])
            ).all()
        assert "pool_key_claimed" in kinds and "key_create_attempt" not in kinds
        # The key works for exactly what was bought.
        chat = kit.venice_http.post(
            "/api/v1/chat/completions",
            headers={"Authorization": f"Bearer {body['key']['api_key']}"},
            json={"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert chat.status_code == 200
        kit.worker.upkeep(force=True)
        assert len(pool_rows(kit, "ready")) == 3  # topped up again
        sup = kit.web.get("/api/supply").json()
        assert sup["sold_cents"] == 700


def test_a_vanished_pool_key_falls_back_to_creation(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON, pool_size=1) as kit:
        kit.worker.upkeep(force=True)
        [row] = pool_rows(kit, "ready")
        kit.shop.gateways["sandbox-1"].delete_key(row.key_id)  # e.g. removed by hand
        order = kit.buy(500)
        kit.worker.drain()
        kit.sandbox.clock.advance(1)
        kit.worker.drain()
        body = kit.status(order)
        assert body["status"] == "fulfilled"
        ours = [
            k
            for k in venice_keys(kit).values()
            if k.description == f"cheaptokens:{order['order_id']}"
        ]
        assert len(ours) == 1 and ours[0].id != row.key_id


def test_pool_keys_expire_at_midnight_and_strays_are_reconciled(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON, pool_size=2) as kit:
        kit.worker.upkeep(force=True)
        old = {r.key_id for r in pool_rows(kit, "ready")}
        kit.sandbox.clock.set(datetime(2026, 11, 26, 0, 0, 1, tzinfo=UTC))
        kit.worker.upkeep(force=True)
        rows = {r.key_id: r.status for r in pool_rows(kit)}
        assert all(rows[k] == "deleted" for k in old)
        fresh = [r for r in pool_rows(kit, "ready")]
        assert len(fresh) == 2 and all(r.day.isoformat() == "2026-11-26" for r in fresh)
        # A pool-named key the shop has no row for (a refill that died) is removed once old.
        from cheaptokens.venice.types import ConsumptionLimit

        stray = kit.shop.gateways["sandbox-1"].create_key(
            description="cheaptokens:pool:stray",
            consumption_limit=ConsumptionLimit(diem=Decimal(0), usd=Decimal(0)),
            expires_at=datetime(2026, 11, 27, tzinfo=UTC),
        )
        kit.worker.upkeep(force=True)
        assert stray.id in venice_keys(kit)  # too young: may be a refill in flight
        kit.sandbox.clock.advance(timedelta(minutes=6).total_seconds())
        kit.worker.upkeep(force=True)
        assert stray.id not in venice_keys(kit)
        assert {r.key_id for r in pool_rows(kit, "ready")} <= set(venice_keys(kit))


def test_a_sale_moves_to_an_account_that_has_a_ready_pool_key(tmp_path, db_url):
    from cheaptokens import inventory
    from cheaptokens.models import Order

    with make_kit(tmp_path, database_url=db_url, now=NOON, accounts=2, pool_size=2) as kit:
        kit.worker.upkeep(force=True)
        # Account 1's pool is used up (drain() below runs jobs only: nothing refills it).
        with kit.shop.db.begin() as s:
            for row in s.scalars(select(PoolKey).where(PoolKey.account == "sandbox-1")):
                row.status = "deleted"
        order = kit.buy(500)
        with kit.shop.db.begin() as s:  # make sure the sale sits on account 1
            o = s.get(Order, order["order_id"])
            if o.account != "sandbox-1":
                inventory.unsell(s, account=o.account, day=o.day, credit_cents=o.credit_cents)
                assert inventory.sell_unreserved(
                    s, account="sandbox-1", day=o.day, credit_cents=o.credit_cents
                )
                o.account = "sandbox-1"
        kit.worker.drain()
        assert kit.status(order)["status"] == "fulfilled"
        sold = [r for r in pool_rows(kit) if r.status == "sold"]
        assert len(sold) == 1 and sold[0].account == "sandbox-2"
        with kit.shop.db.read() as s:
            o = s.get(Order, order["order_id"])
            kinds = s.scalars(select(LedgerEntry.kind).where(LedgerEntry.order_id == o.id)).all()
        assert o.account == "sandbox-2" and "sale_moved" in kinds
        assert "key_create_attempt" not in kinds
        assert kit.web.get("/api/supply").json()["sold_cents"] == 500
