"""The use cases the web handlers and the CLI call (orders/flows.py), with their collaborators."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from cheaptokens.errors import InvalidInput, NotFound, ServiceUnavailable
from cheaptokens.orders import flows
from cheaptokens.orders import state as st
from cheaptokens.payments.errors import PaymentProviderUnavailable
from cheaptokens.payments.types import Checkout
from cheaptokens.venice import errors
from support.unitkit import (
    MIDNIGHT,
    A,
    Env,
    ScriptedPayments,
    fulfilled,
    get_order,
    jobs_of,
    paid,
    pay,
    room,
    run_provision,
)


class CountingPayments(ScriptedPayments):
    """Counts checkouts; ``refuse`` makes the next one fail as an unreachable provider would."""

    checkouts = 0
    refuse = False

    def create_checkout(self, **kwargs: Any) -> Checkout:
        self.checkouts += 1
        if self.refuse:
            raise PaymentProviderUnavailable("down", provider="sandbox")
        checkout: Checkout = self.inner.create_checkout(**kwargs)
        return checkout


def new_order(env: Env, payments: Any = None, **kwargs: Any) -> Any:
    args: dict[str, Any] = {"quote_id": None, "credit_cents": 500, "idempotency_key": None}
    return flows.new_order(
        db=env.db,
        rules=env.rules,
        payments=payments or env.payments,
        token_key=env.token_key,
        public_url="http://shop.test",
        clock=env.clock,
        client="test",
        **{**args, **kwargs},
    )


@pytest.fixture
def counting(env: Env) -> CountingPayments:
    return CountingPayments(env.payments.inner, env.journal)


def test_new_order_opens_a_checkout_for_the_orders_price(env: Env, counting: Any) -> None:
    placed = new_order(env, counting)
    order = get_order(env, placed.order.id)
    assert order.status == st.AWAITING_PAYMENT
    assert order.checkout_url is not None and order.payment_reference is not None
    checkout = counting.inner.read_checkout(order.checkout_url.rsplit("/", 1)[-1])
    assert (checkout.order_id, checkout.amount_cents) == (order.id, order.price_cents)
    assert checkout.expires_at == order.checkout_expires_at.replace(microsecond=0)


def test_a_replayed_order_does_not_open_a_second_checkout(env: Env, counting: Any) -> None:
    first = new_order(env, counting, idempotency_key="k")
    again = new_order(env, counting, idempotency_key="k")
    assert (again.order.id, again.created, again.token) == (first.order.id, False, first.token)
    assert again.order.checkout_url == get_order(env, first.order.id).checkout_url
    assert counting.checkouts == 1


def test_a_checkout_the_provider_cannot_open_cancels_the_order(env: Env, counting: Any) -> None:
    counting.refuse = True
    with pytest.raises(ServiceUnavailable):
        new_order(env, counting)
    (row,) = flows.list_orders(db=env.db, status=None, limit=5)
    assert (row.status, row.failure_reason) == (st.CANCELLED, "checkout failed")
    assert room(env, A).reserved == 0


def test_the_key_is_shown_until_receipt_is_confirmed(env: Env) -> None:
    placed = new_order(env)
    flows.apply_payment_event(
        db=env.db,
        provider="sandbox",
        event=env.payments.outcome(
            get_order(env, placed.order.id).checkout_url.rsplit("/", 1)[-1],  # type: ignore[union-attr]
            "paid",
            env.now,
        ),
        now=env.now,
    )
    run_provision(env, placed.order.id)
    order = flows.order_for(db=env.db, order_id=placed.order.id, token=placed.token)
    secret = flows.reveal_key(box=env.box, order=order)
    assert secret is not None and secret.endswith(order.key_last6 or "-")
    with pytest.raises(NotFound):
        flows.order_for(db=env.db, order_id=placed.order.id, token="ot_wrong")
    done = flows.confirm_receipt(db=env.db, order_id=order.id, token=placed.token, now=env.now)
    assert flows.reveal_key(box=env.box, order=done) is None


def test_usage_reads_venice_and_falls_back_to_the_last_reading(env: Env) -> None:
    placed = new_order(env, credit_cents=500)
    env.journal.clear()
    token = placed.token
    pay(env, placed.order.id)
    run_provision(env, placed.order.id)
    key_id = get_order(env, placed.order.id).key_id
    env.gateways[A].keys[key_id].usage_diem = Decimal("1.001")  # type: ignore[index]

    def usage() -> flows.Usage:
        return flows.usage(
            db=env.db, gateways=env.gateways, order_id=placed.order.id, token=token, now=env.now
        )

    live = usage()
    assert (live.used_cents, live.remaining_cents, live.live) == (101, 399, True)
    assert (live.expires_at, live.seconds_left) == (MIDNIGHT, 12 * 3600)
    env.gateways[A].fail("get_key", errors.Unavailable("down"))
    stale = usage()
    assert (stale.live, stale.used_cents, stale.checked_at) == (False, 0, None)


def test_the_operators_refund_is_queued_or_refused_with_a_reason(env: Env) -> None:
    order_id = paid(env)
    flows.refund_order(db=env.db, order_id=order_id, reason="asked", now=env.now)
    assert jobs_of(env, order_id)["refund"] == "queued"
    with pytest.raises(NotFound):
        flows.refund_order(db=env.db, order_id="ord_" + "0" * 32, reason="x", now=env.now)
    awaiting = new_order(env).order.id
    with pytest.raises(InvalidInput):
        flows.refund_order(db=env.db, order_id=awaiting, reason="x", now=env.now)


def test_pricing_now_opens_the_day_then_only_reads(env: Env) -> None:
    first = flows.pricing_now(db=env.db, rules=env.rules, now=env.now)
    capacity = room(env, A).capacity + 4_450
    assert (first.capacity_cents, first.remaining_cents) == (capacity, capacity)
    assert 0 < first.fraction <= 1 and first.discount == 1 - first.fraction
    fulfilled(env, 1_000)
    later = flows.pricing_now(db=env.db, rules=env.rules, now=env.now)
    assert (later.sold_cents, later.remaining_cents, later.params_hash) == (
        1_000,
        capacity - 1_000,
        first.params_hash,
    )
    assert flows.params_body(db=env.db, digest=first.params_hash)
    with pytest.raises(NotFound):
        flows.params_body(db=env.db, digest="0" * 64)


def test_the_dashboard_shows_the_shops_own_records(env: Env) -> None:
    fulfilled(env, 700)
    board = flows.dashboard(db=env.db, rules=env.rules, now=env.now)
    assert board.today.credit_sold_cents == 700 and len(board.orders) == 1
    assert [s.credit_cents for s in board.sales] == [700]
    assert board.past[0].sold_cents == 700
    assert (board.pricing.now, board.pricing.sold_cents) == (env.now, 700)
