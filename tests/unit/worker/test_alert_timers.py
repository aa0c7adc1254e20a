"""The worker's alert timers: ``key.expiring`` on an upkeep timer, and the quicker second look
(``watch_near``) only at accounts where a key with a webhook is near a usage threshold."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from cheaptokens.models import BuyerEvent
from cheaptokens.orders import events
from cheaptokens.pricing.forecast import Forecast
from cheaptokens.worker.runner import Worker
from support.unitkit import MIDNIGHT, A, B, Env, get_order, paid, run_provision


def worker(env: Env) -> Worker:
    return Worker(
        db=env.db,
        rules=env.rules,
        gateways=env.gateways,
        payments=env.payments,  # type: ignore[arg-type]
        box=env.box,
        clock=env.clock,
        forecast=Forecast(n=100.0, v=0.75, q_med_cents=500.0),
        repricing=False,
        every={"watch": 1e9, "watch_near": 0.0, "expiring": 0.0},
    )


def hooked(env: Env) -> str:
    order_id = paid(env)
    with env.db.begin() as s:
        events.register(
            s, order_id=order_id, url="https://buyer.example/h", box=env.box, now=env.now
        )
    run_provision(env, order_id)
    return order_id


def test_the_quick_look_reads_only_accounts_near_a_threshold(env: Env) -> None:
    order_id = hooked(env)
    w = worker(env)
    assert w.watch_near() is None  # nothing near yet: no call at all
    key_id = get_order(env, order_id).key_id
    env.gateways[A].keys[key_id].usage_diem = Decimal("3.90")  # type: ignore[index]
    assert w.watch_now().near == [A]
    calls_b = len(env.gateways[B].called("list_keys"))
    env.gateways[A].keys[key_id].usage_diem = Decimal("4.00")  # 80 %
    report = w.watch_near()
    assert report is not None and report.accounts == 1
    assert len(env.gateways[B].called("list_keys")) == calls_b
    with env.db.read() as s:
        assert "credit.low:80" in s.scalars(select(BuyerEvent.once)).all()
    assert report.near == []  # 80 % is behind; 95 % is far: back to the normal pace
    assert w.watch_near() is None


def test_upkeep_records_key_expiring(env: Env) -> None:
    hooked(env)
    env.clock.now = MIDNIGHT - timedelta(minutes=50)
    worker(env).upkeep()
    with env.db.read() as s:
        assert [o for o in s.scalars(select(BuyerEvent.once)) if o.startswith("key.expiring")]
