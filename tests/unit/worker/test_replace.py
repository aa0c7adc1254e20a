"""worker.replace and orders.replacement at service level: the old key dies first, the new one
holds what was unspent, on the same account while it has credit, else on another with room,
else (or past the deadline) the unspent share of the price goes back."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from cheaptokens import jobs
from cheaptokens.inventory import record_balance
from cheaptokens.models import Job
from cheaptokens.orders import state as st
from cheaptokens.venice import errors
from cheaptokens.worker.replace import replace_key
from support.unitkit import (
    A,
    B,
    Env,
    claim,
    get_order,
    jobs_of,
    kinds,
    live_keys,
    replacing,
    room,
)


def run_replace(env: Env, order_id: str, worker: str = "w1") -> None:
    """Claim and run the order's replace_key job once, as ``Worker.run_one`` does."""
    lease = claim(env, jobs.REPLACE_KEY, order_id, worker)
    replace_key(
        db=env.db,
        gateways=env.gateways,
        box=env.box,
        rules=env.rules,
        clock=env.clock,
        order_id=order_id,
        lease=lease,
    )


def spend(env: Env, order_id: str, cents: int) -> None:
    """The buyer spent ``cents`` with the order's current key (as Venice counts it)."""
    order = get_order(env, order_id)
    env.gateways[order.account].keys[order.key_id].usage_diem = Decimal(cents) / 100  # type: ignore[index]


def drain(env: Env, account: str) -> None:
    with env.db.begin() as s:
        record_balance(s, account=account, diem_cents=0, now=env.now)


def test_the_old_key_is_deleted_before_the_new_one_holding_the_unspent_rest_is_made(env: Env):
    order_id = replacing(env, 500)
    old = get_order(env, order_id).key_id
    spend(env, order_id, 120)
    env.journal.clear()
    run_replace(env, order_id)
    steps = [(c.account, c.method) for c in env.journal]
    assert steps.index((A, "delete_key")) < steps.index((A, "create_key"))
    order = get_order(env, order_id)
    assert order.status == st.FULFILLED and order.key_id != old
    assert (order.spent_before_cents, order.key_cap_cents) == (120, 380)
    [key] = live_keys(env, order_id)
    assert key.id == order.key_id and key.limit.diem == Decimal("3.80")
    assert room(env, A).sold == 500 and room(env, B).sold == 0  # nothing sold twice
    assert kinds(env, order_id)[-1] == "key_replaced"


def test_a_drained_account_moves_the_rest_to_the_roomiest_other_account(env: Env):
    order_id = replacing(env, 500)
    spend(env, order_id, 100)
    drain(env, A)
    run_replace(env, order_id)
    order = get_order(env, order_id)
    assert (order.status, order.account, order.key_cap_cents) == (st.FULFILLED, B, 400)
    assert [k.id for k in live_keys(env, order_id)] == [order.key_id]
    assert env.gateways[A].active_keys() == []
    # sold again on B; it stays counted as sold on A, whose credit may be gone (never oversell)
    assert room(env, B).sold == 400 and room(env, A).sold == 500


def test_no_account_with_room_refunds_the_unspent_share_of_the_price(env: Env):
    order_id = replacing(env, 500)
    spend(env, order_id, 100)
    drain(env, A)
    drain(env, B)
    run_replace(env, order_id)
    order = get_order(env, order_id)
    assert live_keys(env, order_id) == []
    assert len(env.gateways[A].called("create_key")) == 1  # only the first key was ever made
    assert env.gateways[B].called("create_key") == []
    assert order.failure_reason == "no account has the credit for a replacement key today"
    # 4/5 of the credit was unspent: 4/5 of the price, rounded in the buyer's favour
    assert order.refund_due_cents == -(-order.paid_cents * 400 // 500)
    assert jobs_of(env, order_id)[jobs.REFUND] == "queued"


def test_a_key_that_spent_everything_is_refunded_nothing_and_not_replaced(env: Env):
    order_id = replacing(env, 500)
    spend(env, order_id, 500)
    creations = len(env.gateways[A].called("create_key"))
    run_replace(env, order_id)
    order = get_order(env, order_id)
    assert order.failure_reason == "no credit left" and order.refund_due_cents == 0
    assert len(env.gateways[A].called("create_key")) == creations
    assert live_keys(env, order_id) == []


def test_past_the_deadline_the_rest_is_refunded_instead(env: Env):
    order_id = replacing(env, 500)
    run_replace_deleting_only(env, order_id)
    env.clock.advance(env.rules.provision_deadline.total_seconds() + 1)
    run_replace(env, order_id)
    order = get_order(env, order_id)
    assert order.failure_reason == "no replacement key could be made in time"
    assert order.refund_due_cents == order.paid_cents  # nothing was spent
    assert live_keys(env, order_id) == []


def run_replace_deleting_only(env: Env, order_id: str) -> None:
    """The first attempt deletes the old key, then Venice refuses to make the new one."""
    env.gateways[A].fail("create_key", errors.Unavailable("down", status=503, path="/api_keys"))
    with pytest.raises(jobs.Retry):
        run_replace(env, order_id)
    order = get_order(env, order_id)
    assert order.status == st.REPLACING and order.key_deleted_at is not None
    assert live_keys(env, order_id) == []
    with env.db.begin() as s:  # hand the job back, as the runner's retry_later does
        job = s.get(Job, _job_id(env, order_id))
        assert job is not None
        job.locked_until, job.locked_by = None, None


def test_venice_failing_to_delete_the_old_key_changes_nothing_and_retries(env: Env):
    order_id = replacing(env, 500)
    old = get_order(env, order_id).key_id
    env.gateways[A].fail("delete_key", errors.Unavailable("down", status=503, path="/api_keys"))
    with pytest.raises(jobs.Retry):
        run_replace(env, order_id)
    order = get_order(env, order_id)
    assert (order.status, order.key_id, order.key_deleted_at) == (st.REPLACING, old, None)
    assert [k.id for k in live_keys(env, order_id)] == [old]


def test_a_worker_that_lost_its_lease_deletes_the_key_it_made(env: Env):
    order_id = replacing(env, 500)

    def take_over() -> None:  # another worker takes the job while this one makes the key
        with env.db.begin() as s:
            job = s.get(Job, _job_id(env, order_id))
            assert job is not None
            job.locked_by, job.locked_until = "w2", env.now + timedelta(minutes=5)

    env.gateways[A].on("create_key", take_over)
    with pytest.raises(jobs.Retry, match="lost the lease"):
        run_replace(env, order_id)
    assert get_order(env, order_id).status == st.REPLACING
    assert live_keys(env, order_id) == []  # the old key deleted, the new one not kept


def _job_id(env: Env, order_id: str) -> int:
    with env.db.read() as s:
        query = select(Job.id).where(Job.order_id == order_id, Job.kind == jobs.REPLACE_KEY)
        return s.scalars(query).one()
