"""Retention forgets what is of no more use, and nothing an order, a refund or a recomputed
quote still needs."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from cheaptokens.models import Alert, Job, LedgerEntry, Order, Quote, WebhookEvent
from cheaptokens.orders import flows
from support.shopkit import make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def count(kit, model) -> int:
    with kit.shop.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


def test_prune_forgets_lapsed_quotes_old_events_jobs_and_alerts_not_orders(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        paid = kit.buy(500)  # its quote, payment event and jobs
        kit.worker.drain()
        for _ in range(3):  # quotes nobody ordered
            assert kit.web.post("/api/quotes", json={"credit_cents": 100}).status_code == 201
        kit.sandbox.clock.advance(120)
        kit.worker.upkeep(force=True)  # they lapse (released)
        with kit.shop.db.begin() as s:
            s.add(Alert(at=kit.now(), kind="test", message="an old alert"))
        before = {m: count(kit, m) for m in (Quote, Order, LedgerEntry, WebhookEvent, Job)}
        policy = flows.retention_of(kit.shop.settings)
        # Too young: nothing goes.
        assert set(flows.prune(db=kit.shop.db, policy=policy, now=kit.now()).values()) == {0}
        later = kit.now() + timedelta(days=91)
        dry = flows.prune(db=kit.shop.db, policy=policy, now=later, dry_run=True)
        assert dry["quotes"] == 3 and dry["alerts"] == 1
        assert count(kit, Quote) == before[Quote]  # a dry run deletes nothing
        gone = flows.prune(db=kit.shop.db, policy=policy, now=later)
        assert gone["quotes"] == 3 and gone["webhook_events"] == before[WebhookEvent] >= 1
        assert gone["jobs"] == before[Job] >= 1 and gone["alerts"] == 1
        assert count(kit, Quote) == before[Quote] - 3  # the ordered quote stays
        assert count(kit, Order) == before[Order] and count(kit, LedgerEntry) == before[LedgerEntry]
        # The order still reads, with its quote's price recomputable.
        assert kit.status(paid)["status"] == "fulfilled"
        with kit.shop.db.read() as s:
            order = s.get(Order, paid["order_id"])
            assert s.get(Quote, order.quote_id) is not None


def test_cli_prune(tmp_path, db_url):
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CHEAPTOKENS_DATA_DIR": str(tmp_path),
    }
    r = subprocess.run(
        [sys.executable, "-m", "cheaptokens", "db", "prune", "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "quotes           would forget 0" in r.stdout
