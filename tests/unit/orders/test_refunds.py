"""The refund steps and the key's last days, between the worker's calls."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cheaptokens.errors import InvalidInput
from cheaptokens.models import Order
from cheaptokens.orders import refunds, transitions
from cheaptokens.orders import state as st
from support.unitkit import (
    A,
    Env,
    cancelled,
    expired,
    failed,
    fulfilled,
    get_order,
    jobs_of,
    kinds,
    ledger,
    paid,
    place,
    refund_requested,
    refunded,
    room,
)


def plan(env: Env, order_id: str) -> refunds.RefundPlan | None:
    with env.db.read() as s:
        return refunds.refund_plan(s, order_id=order_id)


def awaiting(env: Env) -> str:
    return place(env).order.id


@pytest.mark.parametrize("builder", [paid, fulfilled, failed])
def test_a_refund_can_be_requested_for_paid_fulfilled_and_failed_orders(
    env: Env, builder: Callable[[Env], str]
) -> None:
    order_id = builder(env)
    refund_requested(env, order_id, "operator says so")
    assert jobs_of(env, order_id)["refund"] == "queued"
    assert get_order(env, order_id).failure_reason == "operator says so"
    assert ledger(env, order_id)[-1].detail == {"reason": "operator says so"}


@pytest.mark.parametrize("builder", [awaiting, cancelled, refunded, expired])
def test_a_refund_cannot_be_requested_for_the_rest(env: Env, builder: Callable[[Env], str]) -> None:
    order_id = builder(env)
    before = jobs_of(env, order_id)
    with pytest.raises(InvalidInput, match="cannot be refunded"):
        refund_requested(env, order_id)
    assert jobs_of(env, order_id) == before


def test_the_plan_of_a_fulfilled_order_deletes_its_key_first(env: Env) -> None:
    order_id = fulfilled(env)
    order = get_order(env, order_id)
    made = plan(env, order_id)
    assert made == refunds.RefundPlan(
        order_id=order_id,
        account=A,
        key_id=order.key_id,
        payment_ref=order.payment_ref,
        amount_cents=order.paid_cents or 0,
        delete_keys_first=True,
    )
    with env.db.begin() as s:
        refunds.keys_deleted(s, order_id=order_id, now=env.now)
        refunds.keys_deleted(s, order_id=order_id, now=env.now)
    assert plan(env, order_id).delete_keys_first is False  # type: ignore[union-attr]
    assert kinds(env, order_id).count("key_deleted") == 1


def test_a_paid_order_that_never_tried_a_key_has_nothing_to_delete(env: Env) -> None:
    made = plan(env, paid(env))
    assert made is not None and (made.key_id, made.delete_keys_first) == (None, False)


@pytest.mark.parametrize("builder", [awaiting, refunded, expired])
def test_there_is_no_refund_to_plan_for_unpaid_refunded_or_expired_orders(
    env: Env, builder: Callable[[Env], str]
) -> None:
    assert plan(env, builder(env)) is None
    assert plan(env, "ord_" + "0" * 32) is None


def test_refund_done_gives_unspent_credit_back_and_is_idempotent(env: Env) -> None:
    order_id = paid(env, 500)
    for ref in ("re_1", "re_2"):
        with env.db.begin() as s:
            refunds.refund_done(s, order_id=order_id, refund_ref=ref, now=env.now)
    order = get_order(env, order_id)
    assert (order.status, order.refund_ref, order.holds) == (st.REFUNDED, "re_1", "none")
    assert room(env, A).sold == 0
    money = [e.money_cents for e in ledger(env, order_id, kind="refunded")]
    assert money == [-(order.paid_cents or 0)]


def test_refund_refused_fails_a_paid_order_once_and_always_alerts(env: Env) -> None:
    order_id = paid(env)
    for _ in range(2):
        with env.db.begin() as s:
            refunds.refund_refused(s, order_id=order_id, reason="no", now=env.now)
    assert get_order(env, order_id).status == st.FAILED
    assert kinds(env, order_id).count("refund_failed") == 1
    assert room(env, A).sold == 500  # the credit stays sold until the money is back


# ----------------------------------------------------------------------------- the key
def confirm(env: Env, order_id: str) -> None:
    with env.db.begin() as s:
        order = s.get(Order, order_id)
        assert order is not None
        transitions.confirm_receipt(s, order=order, now=env.now)


def test_confirming_receipt_forgets_the_secret_once(env: Env) -> None:
    order_id = fulfilled(env)
    confirm(env, order_id)
    confirm(env, order_id)
    order = get_order(env, order_id)
    assert (order.key_secret, order.key_received_at, order.status) == (None, env.now, st.FULFILLED)
    assert order.key_last6 is not None
    assert kinds(env, order_id).count("key_received") == 1


def test_receipt_cannot_be_confirmed_before_the_key_exists(env: Env) -> None:
    order_id = paid(env)
    with pytest.raises(InvalidInput, match="not ready"):
        confirm(env, order_id)


def test_an_expired_order_can_still_be_confirmed_but_holds_no_secret(env: Env) -> None:
    order_id = expired(env)
    confirm(env, order_id)
    assert "key_received" not in kinds(env, order_id)
