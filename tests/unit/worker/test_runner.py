"""The worker loop's decisions: run a due job, back off on Retry, finish what is done."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cheaptokens.models import Job
from cheaptokens.orders import state as st
from cheaptokens.pricing.forecast import Forecast
from cheaptokens.venice import errors
from cheaptokens.worker.runner import Worker
from support.unitkit import A, Env, get_order, paid, place, refund_requested


def worker(env: Env, name: str = "w1") -> Worker:
    return Worker(
        db=env.db,
        rules=env.rules,
        gateways=env.gateways,
        payments=env.payments,  # type: ignore[arg-type]
        box=env.box,
        clock=env.clock,
        forecast=Forecast(n=100.0, v=0.75, q_med_cents=500.0),
        repricing=False,
        name=name,
    )


def job(env: Env, order_id: str, kind: str = "provision") -> Job:
    with env.db.read() as s:
        return s.scalars(select(Job).where(Job.order_id == order_id, Job.kind == kind)).one()


def test_with_nothing_due_run_one_says_so(env: Env) -> None:
    assert worker(env).run_one() is False


def test_a_due_job_is_run_and_finished(env: Env) -> None:
    order_id = paid(env)
    assert worker(env).run_one() is True
    assert get_order(env, order_id).status == st.FULFILLED
    done = job(env, order_id)
    assert (done.status, done.attempts, done.locked_until, done.locked_by) == (
        "done",
        1,
        None,
        "w1",
    )


def test_a_retry_backs_off_by_half_again_each_attempt_up_to_a_minute(env: Env) -> None:
    order_id = paid(env)
    env.gateways[A].fail("create_key", errors.RateLimited("429", retry_after=4.0), times=3)
    w = worker(env)
    waits = []
    for _ in range(3):
        w.run_one()
        queued = job(env, order_id)
        waits.append((queued.run_at - env.now).total_seconds())
        assert (queued.status, queued.locked_until) == ("queued", None)
        assert "rate limited" in (queued.last_error or "")
        assert w.run_one() is False  # not due yet
        env.clock.now = queued.run_at
    assert waits == [4.0, 6.0, 9.0]
    env.gateways[A].fail("create_key", errors.InvalidRequest("no", status=400))  # 30 s × 1.5³
    w.run_one()
    assert (job(env, order_id).run_at - env.now) == timedelta(seconds=60)


def test_drain_runs_every_due_job_of_every_kind(env: Env) -> None:
    first, second = paid(env), paid(env)
    refund_requested(env, first)
    assert worker(env).drain() == 3
    assert {get_order(env, o).status for o in (first, second)} == {st.REFUNDED, st.FULFILLED}


def test_sweep_cancels_lapsed_checkouts(env: Env) -> None:
    order_id = place(env).order.id
    env.clock.now = get_order(env, order_id).checkout_expires_at
    assert worker(env).sweep() == 1
    assert get_order(env, order_id).status == st.CANCELLED


def test_a_job_of_an_unknown_kind_is_an_error_not_a_silent_success(env: Env) -> None:
    from cheaptokens import jobs

    with env.db.begin() as s:
        jobs.enqueue(s, kind="mystery", order_id="ord_x", now=env.now)
    with pytest.raises(ValueError, match="mystery"):
        worker(env).run_one()
    assert job(env, "ord_x", "mystery").status == "queued"  # its lease lapses; it runs again
