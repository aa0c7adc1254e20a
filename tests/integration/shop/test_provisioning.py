"""The provisioning worker against the sandbox: crashes, Venice faults, refunds, midnight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from cheaptokens.models import Alert
from cheaptokens.venice.types import ConsumptionLimit
from support.shopkit import make_kit, worker_of

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the shop catches it."""


class CrashAfterCreate:
    """A Venice gateway whose process 'dies' right after Venice created a key."""

    def __init__(self, inner):
        self.inner = inner
        self.armed = True

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def create_key(self, **kwargs):
        created = self.inner.create_key(**kwargs)
        if self.armed:
            self.armed = False
            raise Crash("killed after Venice created the key, before the database recorded it")
        return created


def shop_keys(kit, order_id=None):
    keys = [
        k
        for k in kit.shop.gateways["sandbox-1"].list_keys()
        if k.description.startswith("cheaptokens:")
    ]
    if order_id:
        keys = [k for k in keys if k.description == f"cheaptokens:{order_id}"]
    return keys


def test_crash_after_create_recovers_into_exactly_one_live_key(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON, wrap=CrashAfterCreate) as kit:
        order = kit.buy(500)
        with pytest.raises(Crash):
            kit.worker.run_one()
        # Venice holds a key whose secret the shop never stored.
        assert len(shop_keys(kit, order["order_id"])) == 1
        orphan = shop_keys(kit, order["order_id"])[0].id
        assert kit.status(order)["status"] == "paid"
        # A new worker takes over once the dead worker's lease has lapsed.
        kit.sandbox.clock.advance(61)
        worker_of(kit.shop).drain()
        body = kit.status(order)
        assert body["status"] == "fulfilled"
        live = shop_keys(kit, order["order_id"])
        assert len(live) == 1 and live[0].id != orphan
        assert live[0].last6 == body["key"]["api_key"][-6:]


def test_venice_500_and_429_are_retried(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        kit.sandbox.faults.add(
            {"method": "POST", "path": "/api/v1/api_keys", "status": 503, "count": 2},
            {
                "method": "POST",
                "path": "/api/v1/api_keys",
                "status": 429,
                "count": 2,
                "retry_after": 1,
            },
        )
        order = kit.buy(500)
        for _ in range(10):
            kit.worker.drain()
            if kit.status(order)["status"] == "fulfilled":
                break
            kit.sandbox.clock.advance(5)
        assert kit.status(order)["status"] == "fulfilled"
        assert len(shop_keys(kit)) == 1


def test_lost_create_response_is_reconciled_not_duplicated(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        kit.sandbox.faults.add({"method": "POST", "path": "/api/v1/api_keys", "drop": True})
        order = kit.buy(500)
        kit.worker.drain()  # Venice made a key, the answer was lost
        assert kit.status(order)["status"] == "paid"
        kit.sandbox.clock.advance(10)
        kit.worker.drain()
        assert kit.status(order)["status"] == "fulfilled"
        assert len(shop_keys(kit, order["order_id"])) == 1


def test_refund_when_no_key_can_be_made_before_the_deadline(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON, provision_deadline_seconds=120) as kit:
        kit.sandbox.faults.add(
            {"method": "POST", "path": "/api/v1/api_keys", "status": 500, "count": None}
        )
        order = kit.buy(500)
        for _ in range(20):
            kit.worker.drain()
            kit.sandbox.clock.advance(15)
        body = kit.status(order)
        assert body["status"] == "refunded" and body["key"] is None
        assert shop_keys(kit) == []
        sup = kit.web.get("/api/supply").json()
        assert sup["sold_cents"] == 0 and sup["reserved_cents"] == 0


def test_midnight_expires_orders_and_deletes_keys(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order = kit.buy(500)
        kit.worker.drain()
        key = kit.status(order)["key"]["api_key"]
        kit.sandbox.clock.set(datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC))
        ok = kit.venice_http.get("/api/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        kit.sandbox.clock.set(datetime(2026, 11, 26, 0, 0, 0, tzinfo=UTC))
        dead = kit.venice_http.post(
            "/api/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert dead.status_code == 401
        kit.worker.upkeep(force=True)
        body = kit.status(order)
        assert body["status"] == "expired" and body["key"]["api_key"] is None
        # A new day: fresh capacity, nothing sold yet.
        sup = kit.web.get("/api/supply").json()
        assert sup["day"] == "2026-11-26" and sup["sold_cents"] == 0
        assert sup["remaining_cents"] == sup["capacity_cents"] > 0


def test_reconcile_deletes_stray_shop_keys_and_alerts(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order = kit.buy(500)
        kit.worker.drain()
        venice = kit.shop.gateways["sandbox-1"]
        stray = venice.create_key(
            description="cheaptokens:ord_doesnotexist",
            consumption_limit=ConsumptionLimit(diem=1, usd=0),
            expires_at=NOON + timedelta(hours=12),
        )
        other = venice.create_key(
            description="operator's own key", consumption_limit=ConsumptionLimit()
        )
        kit.worker.upkeep(force=True)
        ids = {k.id for k in venice.list_keys()}
        assert stray.id not in ids and other.id in ids
        assert len(shop_keys(kit, order["order_id"])) == 1
        with kit.shop.db.read() as s:
            alerts = s.scalars(select(Alert).where(Alert.kind == "reconcile")).all()
        assert [a.order_id for a in alerts] == ["ord_doesnotexist"]


def test_creation_budget_is_respected_then_resumes(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON, max_order_cents=10_000) as kit:
        orders = [kit.buy(100) for _ in range(22)]
        kit.worker.drain()
        statuses = [kit.status(o)["status"] for o in orders]
        assert statuses.count("fulfilled") == 20 and statuses.count("paid") == 2
        kit.sandbox.clock.advance(61)
        kit.worker.drain()
        assert all(kit.status(o)["status"] == "fulfilled" for o in orders)
        assert len(shop_keys(kit)) == 22


def test_a_sale_moves_to_an_account_with_creation_budget(tmp_path, db_url):
    with make_kit(
        tmp_path, database_url=db_url, now=NOON, accounts=2, max_order_cents=10_000
    ) as kit:
        orders = [kit.buy(100) for _ in range(30)]
        kit.worker.drain()
        assert all(kit.status(o)["status"] == "fulfilled" for o in orders)
        per_account = {
            name: len([k for k in gw.list_keys() if k.description.startswith("cheaptokens:")])
            for name, gw in kit.shop.gateways.items()
        }
        assert sum(per_account.values()) == 30 and max(per_account.values()) <= 20
        sup = kit.web.get("/api/supply").json()
        assert sup["sold_cents"] == 3000 and sup["reserved_cents"] == 0


def test_usage_is_recorded_before_the_key_expires(tmp_path, db_url):
    from cheaptokens.models import Order
    from cheaptokens.worker.watch import watch

    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order = kit.buy(500)
        kit.worker.drain()
        key = kit.status(order)["key"]["api_key"]
        for _ in range(3):
            r = kit.venice_http.post(
                "/api/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={
                    "model": "llama-3.3-70b",
                    "messages": [{"role": "user", "content": "hi " * 200}],
                },
            )
            assert r.status_code == 200
        auth = {"Authorization": f"Bearer {order['order_token']}"}
        usage = kit.web.get(f"/api/orders/{order['order_id']}/usage", headers=auth).json()
        assert usage["live"] is True and 0 < usage["used_cents"] <= 500
        assert usage["remaining_cents"] == 500 - usage["used_cents"]
        kit.sandbox.clock.set(datetime(2026, 11, 25, 23, 55, tzinfo=UTC))
        report = watch(
            db=kit.shop.db, gateways=kit.shop.gateways, rules=kit.shop.rules, clock=kit.now
        )
        assert report.accounts == 1 and report.replacing == []
        kit.sandbox.clock.set(datetime(2026, 11, 26, 0, 0, 5, tzinfo=UTC))
        kit.worker.upkeep(force=True)
        with kit.shop.db.read() as s:
            o = s.get(Order, order["order_id"])
            assert o.status == "expired" and o.used_cents == usage["used_cents"]
