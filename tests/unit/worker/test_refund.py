"""worker.refund: no key of the order stays alive, then the money goes back — once."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import select

from cheaptokens import jobs
from cheaptokens.models import StrayPayment
from cheaptokens.orders import state as st
from cheaptokens.payments.errors import PaymentProviderUnavailable, RefundFailed
from cheaptokens.venice import errors
from cheaptokens.worker import maintenance
from cheaptokens.worker.refund import refund_stray
from support.unitkit import (
    MIDNIGHT,
    A,
    Env,
    alerts,
    apply,
    checkout_event,
    fulfilled,
    get_order,
    kinds,
    live_keys,
    paid,
    place,
    refund_requested,
    room,
    run_provision,
    run_refund,
)


def refunds(env: Env) -> list[tuple[str, object]]:
    return [(c.method, c.args) for c in env.journal if c.account == "payments"]


def test_a_fulfilled_order_loses_its_key_first_then_gets_its_money_back(env: Env) -> None:
    order_id = fulfilled(env, 500)
    key_id = get_order(env, order_id).key_id
    env.journal.clear()
    refund_requested(env, order_id, "buyer asked")
    run_refund(env, order_id)
    steps = [(c.account, c.method) for c in env.journal]
    assert steps == [(A, "delete_key"), (A, "list_keys"), ("payments", "refund")]
    assert env.journal[0].args == {"key_id": key_id}
    order = get_order(env, order_id)
    assert env.journal[-1].args == {
        "payment_ref": order.payment_ref,
        "amount_cents": order.paid_cents,
        "key": f"refund-{order_id}",
    }
    assert (order.status, order.refund_ref) == (st.REFUNDED, env.payments.refunds[0].reference)
    assert order.key_deleted_at == env.now and order.key_secret is None
    assert live_keys(env) == []
    assert room(env, A).sold == 500  # the key may have spent some: its credit stays sold
    assert kinds(env, order_id)[-2:] == ["key_deleted", "refunded"]


def test_an_order_that_never_tried_a_key_is_refunded_without_calling_venice(env: Env) -> None:
    order_id = place(env, 500).order.id
    event = checkout_event(env, order_id)
    apply(env, dataclasses.replace(event, amount_cents=event.amount_cents + 1))  # mismatch
    run_refund(env, order_id)
    assert [c.account for c in env.journal] == ["payments"]
    assert env.payments.refunds[0].amount_cents == event.amount_cents + 1
    assert get_order(env, order_id).status == st.REFUNDED
    assert (room(env, A).sold, room(env, A).reserved) == (0, 0)


def test_a_given_up_order_has_its_orphan_key_deleted_and_its_credit_freed(env: Env) -> None:
    order_id = paid(env, 500)
    env.gateways[A].fail("create_key", errors.OutcomeUnknown("timeout"), take_effect=True)
    with pytest.raises(jobs.Retry):
        run_provision(env, order_id)
    (orphan,) = live_keys(env, order_id)
    env.clock.advance(env.rules.provision_deadline.total_seconds())
    run_provision(env, order_id)  # gives up: refund queued
    run_refund(env, order_id)
    assert orphan.deleted_at == env.now and live_keys(env) == []
    assert get_order(env, order_id).status == st.REFUNDED
    assert room(env, A).sold == 0  # no key ever reached the buyer
    assert "credit_released" in kinds(env, order_id)


def test_a_refund_the_provider_refuses_fails_the_order_with_an_alert(env: Env) -> None:
    order_id = fulfilled(env)
    refund_requested(env, order_id)
    env.payments.fail_refund(RefundFailed("charge disputed", provider="sandbox"))
    run_refund(env, order_id)
    assert get_order(env, order_id).status == st.FAILED
    (alert,) = alerts(env, "refund_failed")
    assert (alert.order_id, alert.message) == (order_id, "charge disputed")
    assert env.payments.refunds == [] and live_keys(env) == []
    refund_requested(env, order_id, "operator retries")  # failed -> refunded
    run_refund(env, order_id)
    assert get_order(env, order_id).status == st.REFUNDED
    assert len(env.payments.refunds) == 1


def test_an_unavailable_provider_means_retry_and_no_refund_recorded(env: Env) -> None:
    order_id = paid(env)
    refund_requested(env, order_id)
    env.payments.fail_refund(PaymentProviderUnavailable("503"))
    with pytest.raises(jobs.Retry) as caught:
        run_refund(env, order_id)
    assert caught.value.delay == 10.0
    order = get_order(env, order_id)
    assert (order.status, order.refund_ref, order.refunded_at) == (st.PAID, None, None)
    assert "refunded" not in kinds(env, order_id) and alerts(env) == []
    run_refund(env, order_id)
    assert get_order(env, order_id).status == st.REFUNDED


def test_venice_failing_to_delete_the_key_holds_the_refund_back(env: Env) -> None:
    order_id = fulfilled(env)
    refund_requested(env, order_id)
    env.gateways[A].fail("delete_key", errors.Unavailable("502"))
    with pytest.raises(jobs.Retry) as caught:
        run_refund(env, order_id)
    assert caught.value.delay == 5.0
    assert refunds(env) == [] and get_order(env, order_id).key_deleted_at is None
    assert len(live_keys(env, order_id)) == 1


def test_running_the_refund_twice_refunds_once(env: Env) -> None:
    order_id = fulfilled(env)
    refund_requested(env, order_id)
    run_refund(env, order_id)
    run_refund(env, order_id)
    assert len(refunds(env)) == 1
    assert kinds(env, order_id).count("refunded") == 1


def test_a_refund_never_pays_back_while_a_key_of_the_order_may_live(env: Env) -> None:
    """Invariant 2 ("refunds delete keys first"): when the order's account is not
    configured any more, the refund must wait (as provisioning does) — not pay back and
    leave the buyer's key working until 00:00."""
    order_id = fulfilled(env)
    refund_requested(env, order_id)
    gateways = env.gateways
    env.gateways = {k: v for k, v in gateways.items() if k != A}
    with pytest.raises(jobs.Retry):
        run_refund(env, order_id)
    assert refunds(env) == []
    assert len(gateways[A].described(f"cheaptokens:{order_id}")) == 1


def test_a_refund_requested_before_midnight_is_not_lost_when_the_key_expires(env: Env) -> None:
    """A refund queued for a fulfilled order must still pay back if 00:00 UTC comes before
    the job has finished (here: the provider was briefly down at 23:59)."""
    env.clock.now = MIDNIGHT - timedelta(minutes=1)
    order_id = fulfilled(env)
    refund_requested(env, order_id, "key did not work")
    env.payments.fail_refund(PaymentProviderUnavailable("503"))
    with pytest.raises(jobs.Retry):
        run_refund(env, order_id)
    env.clock.now = MIDNIGHT  # upkeep's expiry runs before the retried refund job
    maintenance.expire_keys(db=env.db, gateways=env.gateways, clock=env.clock)
    run_refund(env, order_id)
    assert len(env.payments.refunds) == 1
    assert get_order(env, order_id).status == st.REFUNDED


# ----------------------------------------------------------------------------- stray payments
def stray(env: Env) -> str:
    order_id = paid(env)
    second = dataclasses.replace(
        checkout_event(env, order_id), event_id="evt_2", payment_ref="sbpay_second"
    )
    apply(env, second)
    return order_id


def test_a_stray_payment_is_refunded_in_full_once(env: Env) -> None:
    order_id = stray(env)
    for _ in range(2):
        refund_stray(db=env.db, payments=env.payments, clock=env.clock, order_id=order_id)
    ((_, args),) = refunds(env)
    assert args == {
        "payment_ref": "sbpay_second",
        "amount_cents": get_order(env, order_id).price_cents,
        "key": "stray-sbpay_second",
    }
    with env.db.read() as s:
        (row,) = s.scalars(select(StrayPayment))
    assert (row.refunded_at, row.refund_ref) == (env.now, env.payments.refunds[0].reference)
    assert get_order(env, order_id).status == st.PAID  # the order itself is untouched
    assert kinds(env, order_id)[-1] == "stray_payment_refunded"


def test_a_refused_stray_refund_raises_an_alert_and_stays_pending(env: Env) -> None:
    order_id = stray(env)
    env.payments.fail_refund(RefundFailed("no", provider="sandbox"))
    refund_stray(db=env.db, payments=env.payments, clock=env.clock, order_id=order_id)
    assert [a.order_id for a in alerts(env, "refund_failed")] == [order_id]
    with env.db.read() as s:
        assert s.scalars(select(StrayPayment)).one().refunded_at is None
    env.payments.fail_refund(PaymentProviderUnavailable("down"))
    with pytest.raises(jobs.Retry):
        refund_stray(db=env.db, payments=env.payments, clock=env.clock, order_id=order_id)
