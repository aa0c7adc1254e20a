"""fulfilment.plan_key and record_key: which key an attempt makes, and who may keep it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from cheaptokens import jobs
from cheaptokens.inventory import keyroom
from cheaptokens.models import PoolKey
from cheaptokens.orders import fulfilment
from cheaptokens.orders import state as st
from cheaptokens.orders.fulfilment import Recorded
from support.unitkit import (
    MIDNIGHT,
    A,
    B,
    Env,
    cancelled,
    claim,
    fulfilled,
    get_order,
    jobs_of,
    kinds,
    ledger,
    make_env,
    paid,
    place,
    pool_key,
    refund_requested,
    refunded,
    room,
    run_refund,
    use_creation_budget,
)


def plan(env: Env, order_id: str) -> fulfilment.KeyPlan | None:
    with env.db.begin() as s:
        return fulfilment.plan_key(
            s, order_id=order_id, rules=env.rules, accounts=list(env.gateways), now=env.now
        )


def attempts(env: Env, account: str) -> int:
    return len([e for e in ledger(env, kind=keyroom.CREATE_ATTEMPT) if e.account == account])


def pool_row(env: Env, key_id: str) -> PoolKey:
    with env.db.read() as s:
        row = s.get(PoolKey, key_id)
    assert row is not None
    return row


# ----------------------------------------------------------------------------- nothing to do
@pytest.mark.parametrize(
    "builder",
    [lambda e: place(e).order.id, cancelled, fulfilled, refunded, lambda e: "ord_" + "0" * 32],
    ids=["awaiting_payment", "cancelled", "fulfilled", "refunded", "unknown"],
)
def test_there_is_nothing_to_plan_for_an_order_that_is_not_paid_and_keyless(
    env: Env, builder: Callable[[Env], str]
) -> None:
    order_id = builder(env)
    before = [e.id for e in ledger(env)]
    assert plan(env, order_id) is None
    assert [e.id for e in ledger(env)] == before


def test_an_order_is_given_up_and_refunded_at_its_deadline(env: Env) -> None:
    order_id = paid(env)
    env.clock.advance(env.rules.provision_deadline.total_seconds() - 1)
    assert plan(env, order_id) is not None
    env.clock.advance(1)
    assert plan(env, order_id) is None
    order = get_order(env, order_id)
    assert order.status == st.PAID and "deadline" in (order.failure_reason or "")
    assert jobs_of(env, order_id)["refund"] == "queued"
    assert kinds(env, order_id)[-1] == "provision_gave_up"


def test_the_deadline_of_an_order_paid_late_in_the_day_is_midnight(env: Env) -> None:
    env.clock.now = MIDNIGHT - timedelta(minutes=5)
    order_id = paid(env)
    assert fulfilment.deadline_of(get_order(env, order_id), env.rules) == MIDNIGHT
    env.clock.now = MIDNIGHT
    assert plan(env, order_id) is None
    assert jobs_of(env, order_id)["refund"] == "queued"


# ----------------------------------------------------------------------------- pool keys
def test_a_ready_pool_key_of_the_orders_account_comes_first(env: Env) -> None:
    key_id = pool_key(env, A)
    order_id = paid(env)
    made = plan(env, order_id)
    assert made is not None and made.pooled is not None
    assert (made.pooled.key_id, made.account, made.credit_cents) == (key_id, A, 500)
    assert (made.expires_at, made.pooled.expires_at, made.recovering) == (MIDNIGHT, MIDNIGHT, False)
    row = pool_row(env, key_id)
    assert (row.status, row.order_id, row.claimed_at) == ("claimed", order_id, env.now)
    assert attempts(env, A) == 0
    assert kinds(env, order_id)[-1] == "pool_key_claimed"
    assert get_order(env, order_id).provision_started_at == env.now


def test_a_pool_key_of_another_account_takes_the_sale_with_it(env: Env) -> None:
    key_id = pool_key(env, B)
    order_id = paid(env)
    made = plan(env, order_id)
    assert made is not None and made.pooled is not None
    assert (made.pooled.key_id, made.account) == (key_id, B)
    assert get_order(env, order_id).account == B
    assert (room(env, A).sold, room(env, B).sold) == (0, 500)
    (moved,) = ledger(env, order_id, kind="sale_moved")
    assert (moved.account, moved.credit_cents, moved.detail) == (B, 500, {"from": A})


def test_a_pool_key_on_an_account_without_the_credit_goes_back_to_the_pool(db: Any) -> None:
    env = make_env(db, allocations={A: 10_000, B: 600})  # B can sell 540 - 50 = 490
    key_id = pool_key(env, B)
    order_id = paid(env, 500)
    made = plan(env, order_id)
    assert made is not None and made.pooled is None and made.account == A
    row = pool_row(env, key_id)
    assert (row.status, row.order_id) == ("ready", None)
    assert (room(env, A).sold, room(env, B).sold) == (500, 0)


def test_a_pool_key_past_its_expiry_is_not_claimed_on_any_account(env: Env) -> None:
    dead = pool_key(env, B)
    with env.db.begin() as s:
        row = s.get(PoolKey, dead)
        assert row is not None
        row.expires_at = env.now  # still "ready" and of today, but dead in Venice
    made = plan(env, paid(env))
    assert made is not None and made.pooled is None and made.account == A
    assert pool_row(env, dead).status == "ready"


# ----------------------------------------------------------------------------- creation
def test_without_pool_keys_a_key_is_created_on_the_orders_account(env: Env) -> None:
    order_id = paid(env)
    made = plan(env, order_id)
    assert made is not None and made.pooled is None
    assert (made.account, made.recovering, made.expires_at) == (A, False, MIDNIGHT)
    (attempt,) = ledger(env, kind=keyroom.CREATE_ATTEMPT)
    assert (attempt.account, attempt.order_id, attempt.at) == (A, order_id, env.now)
    assert get_order(env, order_id).provision_started_at == env.now


def test_an_account_out_of_creation_budget_hands_the_sale_to_one_with_room(env: Env) -> None:
    order_id = paid(env)
    use_creation_budget(env, A)
    made = plan(env, order_id)
    assert made is not None and made.account == B and made.pooled is None
    assert get_order(env, order_id).account == B
    assert (room(env, A).sold, room(env, B).sold) == (0, 500)
    assert attempts(env, B) == 1


def test_an_account_at_its_key_cap_hands_the_sale_to_one_with_room(db: Any) -> None:
    env = make_env(db, max_active_keys=1)
    fulfilled(env)  # A now holds one live key: its cap
    order_id = paid(env)
    assert get_order(env, order_id).account == A
    made = plan(env, order_id)
    assert made is not None and made.account == B


def test_no_room_anywhere_means_retry_when_the_oldest_creation_leaves_the_window(
    env: Env,
) -> None:
    order_id = paid(env)
    use_creation_budget(env, A, seconds_ago=45)
    use_creation_budget(env, B, seconds_ago=10)
    with pytest.raises(jobs.Retry) as caught:
        plan(env, order_id)
    assert caught.value.delay == pytest.approx(15)
    order = get_order(env, order_id)  # the attempt was rolled back with the transaction
    assert (order.account, order.provision_started_at) == (A, None)
    assert attempts(env, A) == attempts(env, B) == 20


def test_a_sale_cannot_move_to_an_account_with_room_but_no_credit(db: Any) -> None:
    env = make_env(db, allocations={A: 10_000, B: 600})  # B can sell 490
    order_id = paid(env, 500)
    use_creation_budget(env, A)
    with pytest.raises(jobs.Retry):
        plan(env, order_id)
    assert (room(env, A).sold, room(env, B).sold) == (500, 0)


# ----------------------------------------------------------------------------- recovering
def test_a_second_attempt_is_marked_recovering_and_claims_nothing_new(env: Env) -> None:
    order_id = paid(env)
    first = plan(env, order_id)
    later = pool_key(env, A)  # a pool key appears meanwhile
    env.clock.advance(5)
    second = plan(env, order_id)
    assert first is not None and second is not None
    assert (first.recovering, second.recovering, second.pooled) == (False, True, None)
    assert pool_row(env, later).status == "ready"
    assert attempts(env, A) == 2
    assert get_order(env, order_id).provision_started_at == env.now - timedelta(seconds=5)


def test_a_second_attempt_keeps_the_pool_key_it_claimed(env: Env) -> None:
    key_id = pool_key(env, A)
    order_id = paid(env)
    plan(env, order_id)
    again = plan(env, order_id)
    assert again is not None and again.pooled is not None
    assert (again.pooled.key_id, again.recovering) == (key_id, True)
    assert attempts(env, A) == 0


def test_a_vanished_pool_key_is_dropped_and_the_next_attempt_creates(env: Env) -> None:
    key_id = pool_key(env, A)
    order_id = paid(env)
    plan(env, order_id)
    with env.db.begin() as s:
        fulfilment.pool_key_vanished(s, key_id=key_id)
    assert pool_row(env, key_id).status == "deleted"
    again = plan(env, order_id)
    assert again is not None and again.pooled is None and again.recovering
    assert attempts(env, A) == 1


def test_mark_attempt_started_only_marks_once(env: Env) -> None:
    order_id = paid(env)
    with env.db.begin() as s:
        fulfilment.mark_attempt_started(s, order_id=order_id, now=env.now)
        fulfilment.mark_attempt_started(s, order_id="ord_" + "0" * 32, now=env.now)
    env.clock.advance(9)
    with env.db.begin() as s:
        fulfilment.mark_attempt_started(s, order_id=order_id, now=env.now)
    assert get_order(env, order_id).provision_started_at == env.now - timedelta(seconds=9)


# ----------------------------------------------------------------------------- recording
def record(
    env: Env, order_id: str, lease: jobs.Lease, key_id: str = "key-1", **kw: Any
) -> Recorded:
    expires_at: datetime | None = kw.pop("expires_at", None)
    with env.db.begin() as s:
        return fulfilment.record_key(
            s,
            order_id=order_id,
            key_id=key_id,
            api_key=kw.pop("api_key", "VENICE_INFERENCE_KEY_abc123"),
            expires_at=expires_at,
            box=env.box,
            lease=lease,
            now=env.now,
        )


def test_a_key_recorded_under_the_lease_fulfils_the_order_sealed(env: Env) -> None:
    order_id = paid(env)
    lease = claim(env, jobs.PROVISION, order_id)
    assert record(env, order_id, lease, api_key="VENICE_INFERENCE_KEY_xyz789") is Recorded.KEPT
    order = get_order(env, order_id)
    assert (order.status, order.key_id, order.key_last6) == (st.FULFILLED, "key-1", "xyz789")
    assert order.key_secret is not None and b"xyz789" not in order.key_secret
    assert env.box.open(order.key_secret, context=order_id) == "VENICE_INFERENCE_KEY_xyz789"
    assert (order.key_expires_at, order.fulfilled_at) == (MIDNIGHT, env.now)
    (created,) = ledger(env, order_id, kind="key_created")
    assert (created.account, created.credit_cents, created.detail) == (A, 500, {"key_id": "key-1"})


def test_a_recorded_pool_key_is_marked_sold(env: Env) -> None:
    key_id = pool_key(env, A)
    order_id = paid(env)
    plan(env, order_id)
    lease = claim(env, jobs.PROVISION, order_id)
    assert record(env, order_id, lease, key_id=key_id, expires_at=MIDNIGHT) is Recorded.KEPT
    assert pool_row(env, key_id).status == "sold"


def test_the_same_key_recorded_again_is_already_there(env: Env) -> None:
    order_id = paid(env)
    lease = claim(env, jobs.PROVISION, order_id)
    assert record(env, order_id, lease) is Recorded.KEPT
    assert record(env, order_id, lease) is Recorded.ALREADY
    assert record(env, order_id, lease, key_id="key-2") is Recorded.LOST
    assert get_order(env, order_id).key_id == "key-1"


def test_a_key_made_after_another_worker_took_the_job_over_is_lost(env: Env) -> None:
    order_id = paid(env)
    lease = claim(env, jobs.PROVISION, order_id, worker="w1")
    env.clock.advance(env.rules.job_lease.total_seconds() + 1)
    claim(env, jobs.PROVISION, order_id, worker="w2")  # w1's lease lapsed: w2 takes over
    assert record(env, order_id, lease) is Recorded.LOST
    order = get_order(env, order_id)
    assert (order.status, order.key_id) == (st.PAID, None)


def test_a_key_made_after_the_lease_lapsed_is_lost_even_if_no_one_took_over(env: Env) -> None:
    order_id = paid(env)
    lease = claim(env, jobs.PROVISION, order_id)
    env.clock.advance(env.rules.job_lease.total_seconds())
    assert record(env, order_id, lease) is Recorded.LOST
    assert get_order(env, order_id).status == st.PAID


def test_a_key_made_for_an_order_refunded_meanwhile_is_lost(env: Env) -> None:
    order_id = paid(env)
    lease = claim(env, jobs.PROVISION, order_id)
    refund_requested(env, order_id)
    run_refund(env, order_id)
    assert record(env, order_id, lease) is Recorded.LOST
    order = get_order(env, order_id)
    assert (order.status, order.key_id) == (st.REFUNDED, None)


def test_a_key_for_an_unknown_order_is_lost(env: Env) -> None:
    order_id = paid(env)
    lease = claim(env, jobs.PROVISION, order_id)
    assert record(env, "ord_" + "0" * 32, lease) is Recorded.LOST
