"""Buyer events at service level: recorded by the transactions that decide them, once per
threshold, only for orders with a webhook; the watch looks sooner near a threshold; the send
schedule retries with backoff and then gives up."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select

from cheaptokens.models import BuyerEvent, OrderWebhook
from cheaptokens.orders import events, transitions
from cheaptokens.worker.watch import watch
from support.unitkit import (
    MIDNIGHT,
    A,
    Env,
    fulfilled,
    get_order,
    paid,
    run_provision,
)


def hook(env: Env, order_id: str, url: str = "https://buyer.example/hook") -> str:
    with env.db.begin() as s:
        return events.register(s, order_id=order_id, url=url, box=env.box, now=env.now)


def sent(env: Env, order_id: str) -> list[tuple[str, dict[str, object]]]:
    with env.db.read() as s:
        rows = s.scalars(
            select(BuyerEvent).where(BuyerEvent.order_id == order_id).order_by(BuyerEvent.id)
        ).all()
        return sorted(
            ((r.kind, json.loads(r.body)["data"]) for r in rows),
            key=lambda kd: (kd[0], json.dumps(kd[1], sort_keys=True)),
        )


def kinds(env: Env, order_id: str) -> list[str]:
    with env.db.read() as s:
        return sorted(s.scalars(select(BuyerEvent.once).where(BuyerEvent.order_id == order_id)))


def use(env: Env, order_id: str, dollars: str) -> None:
    key_id = get_order(env, order_id).key_id
    env.gateways[A].keys[key_id].usage_diem = Decimal(dollars)  # type: ignore[index]
    watch(db=env.db, gateways=env.gateways, rules=env.rules, clock=env.clock)


def test_the_secret_is_sealed_to_the_order_and_starts_whsec(env: Env) -> None:
    order_id = paid(env)
    secret = hook(env, order_id)
    assert secret.startswith("whsec_") and len(secret) > 40
    with env.db.read() as s:
        row = s.get(OrderWebhook, order_id)
        assert row is not None and secret.encode() not in row.secret
        assert env.box.open(row.secret, context=events.secret_context(order_id)) == secret


def test_key_ready_is_recorded_with_the_key_in_the_same_transaction(env: Env) -> None:
    order_id = paid(env)
    hook(env, order_id)
    run_provision(env, order_id)
    [(kind, data)] = sent(env, order_id)
    order = get_order(env, order_id)
    assert kind == "key.ready"
    assert data["order_id"] == order_id and data["key_last6"] == order.key_last6
    assert data["credit_cents"] == 500
    with env.db.read() as s:
        body = s.scalars(select(BuyerEvent.body)).one()
    assert "VENICE_INFERENCE_KEY" not in body  # the key itself is never sent


def test_no_webhook_no_event(env: Env) -> None:
    order_id = fulfilled(env)
    use(env, order_id, "4.90")
    with env.db.read() as s:
        assert s.scalar(select(func.count()).select_from(BuyerEvent)) == 0


def test_emit_is_once_per_threshold(env: Env) -> None:
    order_id = paid(env)
    hook(env, order_id)
    with env.db.begin() as s:
        first = events.emit(s, order_id=order_id, kind="credit.low", now=env.now, once="x:80")
        again = events.emit(s, order_id=order_id, kind="credit.low", now=env.now, once="x:80")
    assert first is not None and first.startswith("msg_") and again is None
    assert kinds(env, order_id) == ["x:80"]


def test_credit_low_at_80_and_95_then_exhausted_each_once(env: Env) -> None:
    order_id = paid(env)  # $5
    hook(env, order_id)
    run_provision(env, order_id)
    use(env, order_id, "3.00")  # 60 %: nothing
    assert kinds(env, order_id) == [f"key.ready:{get_order(env, order_id).key_id}"]
    use(env, order_id, "4.00")  # 80 %
    use(env, order_id, "4.10")  # still 82 %: nothing new
    use(env, order_id, "4.75")  # 95 %
    use(env, order_id, "5.00")  # all of it
    use(env, order_id, "5.00")
    got = [
        (k, d.get("threshold"), d["used_cents"]) for k, d in sent(env, order_id) if k != "key.ready"
    ]
    assert got == [
        ("credit.exhausted", None, 500),
        ("credit.low", 80, 400),
        ("credit.low", 95, 475),
    ]


def test_a_jump_past_several_thresholds_sends_only_the_highest(env: Env) -> None:
    order_id = paid(env)
    hook(env, order_id)
    run_provision(env, order_id)
    use(env, order_id, "4.80")  # 96 %
    assert [d.get("threshold") for k, d in sent(env, order_id) if k == "credit.low"] == [95]
    use(env, order_id, "5.20")  # past the cap: exhausted (and the key is deleted)
    assert "credit.exhausted" in [k for k, _ in sent(env, order_id)]


def test_the_watch_looks_again_soon_only_near_a_threshold(env: Env) -> None:
    order_id = paid(env)
    hook(env, order_id)
    run_provision(env, order_id)
    key_id = get_order(env, order_id).key_id
    env.gateways[A].keys[key_id].usage_diem = Decimal("3.00")  # type: ignore[index]
    assert watch(db=env.db, gateways=env.gateways, rules=env.rules, clock=env.clock).near == []
    env.gateways[A].keys[key_id].usage_diem = Decimal("3.90")  # 78 %: 2 points below 80
    report = watch(db=env.db, gateways=env.gateways, rules=env.rules, clock=env.clock)
    assert report.near == [A]
    # The quick look reads only the accounts named.
    before = len(env.gateways["acct-b"].called("list_keys"))
    watch(db=env.db, gateways=env.gateways, rules=env.rules, clock=env.clock, only={A})
    assert len(env.gateways["acct-b"].called("list_keys")) == before


def test_a_key_without_webhook_never_hurries_the_watch(env: Env) -> None:
    order_id = fulfilled(env)
    key_id = get_order(env, order_id).key_id
    env.gateways[A].keys[key_id].usage_diem = Decimal("3.90")  # type: ignore[index]
    assert watch(db=env.db, gateways=env.gateways, rules=env.rules, clock=env.clock).near == []


def test_key_expiring_60_then_15_minutes_before_midnight(env: Env) -> None:
    order_id = paid(env)
    hook(env, order_id)
    run_provision(env, order_id)
    env.clock.now = MIDNIGHT - timedelta(minutes=61)  # type: ignore[attr-defined]
    with env.db.begin() as s:
        assert events.expiring(s, now=env.now) == 0
    for minutes_before, recorded in ((59, 1), (30, 0), (14, 1), (5, 0)):
        with env.db.begin() as s:
            got = events.expiring(s, now=MIDNIGHT - timedelta(minutes=minutes_before))
        assert got == recorded, minutes_before
    minutes = [d["minutes"] for k, d in sent(env, order_id) if k == "key.expiring"]
    assert sorted(minutes) == [15, 60]


def test_a_key_bought_late_gets_only_the_nearest_expiry_warning(env: Env) -> None:
    order_id = paid(env)
    hook(env, order_id)
    run_provision(env, order_id)
    with env.db.begin() as s:
        events.expiring(s, now=MIDNIGHT - timedelta(minutes=10))
        events.expiring(s, now=MIDNIGHT - timedelta(minutes=9))
    assert [d["minutes"] for k, d in sent(env, order_id) if k == "key.expiring"] == [15]


def test_replacement_events_started_and_done_with_the_reason(env: Env) -> None:
    from cheaptokens.orders.rules import REISSUE_REASON

    order_id = paid(env)
    hook(env, order_id)
    run_provision(env, order_id)
    with env.db.begin() as s:
        order = s.get(transitions.Order, order_id)
        assert order is not None
        transitions.begin_replacement(s, order=order, reason=REISSUE_REASON, now=env.now)
    stages = [d["stage"] for k, d in sent(env, order_id) if k == "key.replaced"]
    assert stages == ["started"]
    [(_, data)] = [(k, d) for k, d in sent(env, order_id) if k == "key.replaced"]
    assert data["reason"] == REISSUE_REASON


def test_sending_retries_with_backoff_then_gives_up(env: Env) -> None:
    order_id = paid(env)
    hook(env, order_id)
    run_provision(env, order_id)
    lease = timedelta(seconds=60)
    for n in range(1, len(events.RETRY_DELAYS) + 2):
        with env.db.begin() as s:
            [out] = events.claim_due(s, now=env.now, limit=4, lease=lease)
            assert out.attempt == n
            # Leased: no second sender gets it meanwhile.
            assert events.claim_due(s, now=env.now, limit=4, lease=lease) == []
        with env.db.begin() as s:
            events.record_attempt(
                s,
                event_id=out.event_id,
                attempt=n,
                status_code=500,
                error="the receiver answered 500",
                duration_ms=3,
                now=env.now,
            )
        if n <= len(events.RETRY_DELAYS):
            with env.db.begin() as s:
                assert events.claim_due(s, now=env.now, limit=4, lease=lease) == []
            env.clock.advance(events.RETRY_DELAYS[n - 1])
    with env.db.read() as s:
        log = events.delivery_log(s, order_id=order_id)
    [row] = log.events
    assert row.status == "failed" and row.attempts == len(events.RETRY_DELAYS) + 1
    assert [t.status_code for t in row.tries] == [500] * (len(events.RETRY_DELAYS) + 1)


def test_a_late_outcome_from_a_lapsed_lease_is_ignored(env: Env) -> None:
    order_id = paid(env)
    hook(env, order_id)
    run_provision(env, order_id)
    with env.db.begin() as s:
        [first] = events.claim_due(s, now=env.now, limit=4, lease=timedelta(seconds=10))
    env.clock.advance(11)
    with env.db.begin() as s:
        [second] = events.claim_due(s, now=env.now, limit=4, lease=timedelta(seconds=10))
    assert second.event_id == first.event_id and second.attempt == first.attempt + 1
    with env.db.begin() as s:
        events.record_attempt(
            s,
            event_id=first.event_id,
            attempt=first.attempt,
            status_code=204,
            error=None,
            duration_ms=1,
            now=env.now,
        )
        events.record_attempt(
            s,
            event_id=second.event_id,
            attempt=second.attempt,
            status_code=500,
            error="x",
            duration_ms=1,
            now=env.now,
        )
    with env.db.read() as s:
        [row] = events.delivery_log(s, order_id=order_id).events
    assert row.status == "pending" and [t.attempt for t in row.tries] == [2]


def test_one_order_sends_one_event_at_a_time(env: Env) -> None:
    order_id = paid(env)
    hook(env, order_id)
    run_provision(env, order_id)
    with env.db.begin() as s:
        for n in range(3):
            events.emit(s, order_id=order_id, kind="credit.low", now=env.now, once=f"t{n}")
    with env.db.begin() as s:
        batch = events.claim_due(s, now=env.now, limit=4, lease=timedelta(seconds=60))
        assert len(batch) == 1
        assert events.claim_due(s, now=env.now, limit=4, lease=timedelta(seconds=60)) == []
