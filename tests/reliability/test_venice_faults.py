"""Venice misbehaving, through the sandbox's fault injection: the shop retries within
Venice's limits, refunds after its deadline, and stays up for buyers meanwhile."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx

from cheaptokens.config import Settings
from cheaptokens.models import LedgerEntry, Order
from cheaptokens.shop import build_shop
from support.procs import sandbox
from support.shopkit import make_kit, paid_order, refresh, worker_of

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
EVERYTHING = {"path": "/api/v1/*", "status": 503, "count": None}


def test_pages_pricing_and_quotes_stay_up_while_venice_is_down(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        kit.sandbox.faults.add(EVERYTHING)
        for path in ("/", "/api/pricing", "/api/supply", "/docs/", "/openapi.json"):
            assert kit.web.get(path).status_code == 200, path
        order = kit.buy(500)  # quoting, ordering and paying need no Venice call
        kit.worker.upkeep(force=True)  # balance, usage, reconcile all fail quietly
        kit.worker.drain()
        assert kit.status(order)["status"] == "paid"
        assert kit.web.get("/api/pricing").status_code == 200
        kit.sandbox.faults.clear()
        kit.sandbox.clock.advance(30)
        kit.worker.drain()
        assert kit.status(order)["status"] == "fulfilled"


def test_429_with_reset_headers_is_honoured_not_hammered(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        kit.sandbox.faults.add(
            {
                "method": "POST",
                "path": "/api/v1/api_keys",
                "status": 429,
                "count": 12,
                "retry_after": 2,
            }
        )
        order = kit.buy(500)
        rounds = 0
        while kit.status(order)["status"] != "fulfilled" and rounds < 30:
            kit.worker.drain()
            kit.sandbox.clock.advance(3)
            rounds += 1
        assert kit.status(order)["status"] == "fulfilled"
        with kit.shop.db.read() as s:
            attempts = s.query(LedgerEntry).filter(LedgerEntry.kind == "key_create_attempt").count()
        # 12 refusals are absorbed by the client's own backoff and a few job retries,
        # never by more than 20 creation attempts a minute.
        assert 1 <= attempts <= 20


def test_timeouts_and_slow_answers_over_real_http(tmp_path):
    admin = f"VENICE_ADMIN_KEY_fault_{uuid.uuid4().hex[:8]}"
    with sandbox(f"{admin}:20", log=tmp_path / "sandbox.log") as venice:
        root = venice.removesuffix("/api/v1")
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'shop.db'}",
            data_dir=tmp_path,
            venice_base_url=venice,
            venice_admin_keys=f"main={admin}",
            venice_timeout_seconds=0.5,
            job_lease_seconds=2,
        )
        from cheaptokens import migrate

        migrate.upgrade(settings.db_url)
        shop = build_shop(settings)
        try:
            assert refresh(shop) == 1
            # Slow but within the timeout: works at once.
            httpx.post(f"{root}/_sandbox/faults", json={"latency_ms": 200, "count": None})
            a = paid_order(shop, 200)
            worker_of(shop).drain()
            assert status(shop, a) == "fulfilled"
            # Slower than the timeout, once, on key creation: Venice made a key the shop
            # never heard about; the next attempt deletes it and makes exactly one more.
            httpx.delete(f"{root}/_sandbox/faults")
            httpx.post(
                f"{root}/_sandbox/faults",
                json={"method": "POST", "path": "/api/v1/api_keys", "latency_ms": 1500, "count": 1},
            )
            b = paid_order(shop, 200)
            worker = worker_of(shop)
            for _ in range(20):
                worker.drain()
                if status(shop, b) == "fulfilled":
                    break
                time.sleep(0.5)
            assert status(shop, b) == "fulfilled"
            time.sleep(1.2)  # the slow create has finished inside the sandbox by now
            worker.upkeep(force=True)
            keys = httpx.get(
                f"{venice}/api_keys", headers={"Authorization": f"Bearer {admin}"}
            ).json()["data"]
            ours = [k for k in keys if k["description"] == f"cheaptokens:{b}"]
            with shop.db.read() as s:
                assert [k["id"] for k in ours] == [s.get(Order, b).key_id]
        finally:
            shop.close()


def status(shop, order_id) -> str:
    with shop.db.read() as s:
        return s.get(Order, order_id).status
