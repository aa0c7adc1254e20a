"""The order state machine, and every transition function held against it.

The expected edges are those drawn in docs/architecture.md ("Order states"), written out
here independently of ``orders/state.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from cheaptokens.errors import Conflict, InvalidInput
from cheaptokens.models import Order
from cheaptokens.orders import state as st
from cheaptokens.orders import transitions
from cheaptokens.payments import PaymentEvent
from support.unitkit import (
    B,
    Env,
    cancelled,
    expired,
    failed,
    fulfilled,
    get_order,
    paid,
    place,
    refunded,
    replacing,
)

STATUSES = (
    "awaiting_payment",
    "paid",
    "fulfilled",
    "expired",
    "refunded",
    "failed",
    "cancelled",
    "replacing",
)
EDGES = {
    ("awaiting_payment", "paid"),
    ("awaiting_payment", "cancelled"),
    ("cancelled", "paid"),
    ("paid", "fulfilled"),
    ("paid", "refunded"),
    ("paid", "failed"),
    ("paid", "cancelled"),  # x402: the authorization did not settle
    ("fulfilled", "expired"),
    ("fulfilled", "refunded"),
    ("fulfilled", "failed"),
    ("failed", "refunded"),
    ("fulfilled", "replacing"),
    ("replacing", "fulfilled"),
    ("replacing", "refunded"),
    ("replacing", "failed"),
}


def test_the_machine_knows_every_status_and_only_those() -> None:
    named = {st.AWAITING_PAYMENT, st.PAID, st.FULFILLED, st.EXPIRED, st.REFUNDED, st.FAILED}
    assert set(st.ALLOWED) == named | {st.CANCELLED, st.REPLACING} == set(STATUSES)


@pytest.mark.parametrize(("current", "new"), list(itertools.product(STATUSES, STATUSES)))
def test_check_transition_allows_exactly_the_drawn_edges(current: str, new: str) -> None:
    if (current, new) in EDGES:
        st.check_transition(current, new)
    else:
        with pytest.raises(Conflict, match=f"from {current} to {new}"):
            st.check_transition(current, new)


def test_an_unknown_status_has_no_way_out() -> None:
    with pytest.raises(Conflict):
        st.check_transition("lost", st.PAID)


def test_terminal_states_have_no_edges() -> None:
    for status in st.TERMINAL:
        assert all((status, other) not in EDGES for other in STATUSES)
        assert st.ALLOWED[status] == frozenset()


# ------------------------------------------------------------ every transition × every state
def _event(order: Order) -> PaymentEvent:
    return PaymentEvent(
        event_id="evt_machine",
        kind="paid",
        order_id=order.id,
        reference="ref",
        payment_ref="sbpay_machine",
        amount_cents=order.price_cents,
        currency=order.currency,
        occurred_at=order.created_at,
    )


Transition = Callable[[Session, Order, Env], Any]

TRANSITIONS: dict[str, Transition] = {
    "cancel": lambda s, o, e: transitions.cancel(s, order=o, now=e.now, reason="t"),
    "mark_paid": lambda s, o, e: transitions.mark_paid(s, order=o, event=_event(o), now=e.now),
    "payment_authorized": lambda s, o, e: transitions.payment_authorized(
        s, order=o, payer="0x" + "ab" * 20, payment_ref="x402:t", now=e.now
    ),
    "payment_settled": lambda s, o, e: transitions.payment_settled(
        s, order=o, amount_cents=1, transaction=None, now=e.now
    ),
    "payment_not_settled": lambda s, o, e: transitions.payment_not_settled(
        s, order=o, key_id=None, now=e.now
    ),
    "begin_provisioning": lambda s, o, e: transitions.begin_provisioning(o, now=e.now),
    "move_sale": lambda s, o, e: transitions.move_sale(s, order=o, to=B, now=e.now),
    "give_up": lambda s, o, e: transitions.give_up(s, order=o, now=e.now),
    "fulfil": lambda s, o, e: transitions.fulfil(
        s,
        order=o,
        key_id="key-machine",
        api_key="VENICE_INFERENCE_KEY_machine",
        expires_at=None,
        box=e.box,
        now=e.now,
    ),
    "confirm_receipt": lambda s, o, e: transitions.confirm_receipt(s, order=o, now=e.now),
    "record_usage": lambda s, o, e: transitions.record_usage(o, used_cents=1, now=e.now),
    "request_refund": lambda s, o, e: transitions.request_refund(s, order=o, reason="t", now=e.now),
    "key_deleted": lambda s, o, e: transitions.key_deleted(s, order=o, now=e.now, why="t"),
    "refunded": lambda s, o, e: transitions.refunded(s, order=o, refund_ref="r", now=e.now),
    "refund_failed": lambda s, o, e: transitions.refund_failed(s, order=o, reason="t", now=e.now),
    "expire": lambda s, o, e: transitions.expire(s, order=o, now=e.now),
    "begin_replacement": lambda s, o, e: transitions.begin_replacement(
        s, order=o, reason="t", now=e.now
    ),
    "key_replaced": lambda s, o, e: transitions.key_replaced(
        s,
        order=o,
        key_id="key-machine-2",
        api_key="VENICE_INFERENCE_KEY_machine_2",
        expires_at=None,
        box=e.box,
        now=e.now,
    ),
}


def _orders_in_every_state(env: Env) -> dict[str, str]:
    made = {
        "expired": expired(env, 200),  # first: it moves the clock to 00:00 (a new day)
        "awaiting_payment": place(env, 200).order.id,
        "cancelled": cancelled(env, 200),
        "paid": paid(env, 200),
        "fulfilled": fulfilled(env, 200),
        "refunded": refunded(env, 200),
        "failed": failed(env, 200),
        "replacing": replacing(env, 200),
    }
    assert {s: get_order(env, o).status for s, o in made.items()} == {s: s for s in made}
    return made


def test_every_transition_moves_only_along_an_edge_and_every_edge_is_used(env: Env) -> None:
    orders = _orders_in_every_state(env)
    seen: set[tuple[str, str]] = set()
    for before, order_id in orders.items():
        for name, transition in TRANSITIONS.items():
            session = env.db.writes()
            try:
                order = session.get(Order, order_id)
                assert order is not None
                try:
                    transition(session, order, env)
                except (Conflict, InvalidInput):
                    assert order.status == before, (name, before)
                    continue
                after = order.status
            finally:
                session.rollback()
                session.close()
            assert after == before or (before, after) in EDGES, (name, before, after)
            if after != before:
                seen.add((before, after))
    assert seen == EDGES


@pytest.mark.parametrize(
    ("builder", "name"),
    [
        (place, "fulfil"),
        (place, "expire"),
        (fulfilled, "mark_paid"),
        (refunded, "refund_failed"),
        (expired, "refunded"),
    ],
)
def test_a_transition_off_the_machine_raises_conflict_and_changes_nothing(
    env: Env, builder: Callable[..., Any], name: str
) -> None:
    made = builder(env, 200)
    order_id = made if isinstance(made, str) else made.order.id
    before = get_order(env, order_id)
    with pytest.raises(Conflict), env.db.begin() as s:
        order = s.get(Order, order_id)
        assert order is not None
        TRANSITIONS[name](s, order, env)
    after = get_order(env, order_id)
    assert (after.status, after.updated_at, after.key_id) == (
        before.status,
        before.updated_at,
        before.key_id,
    )
