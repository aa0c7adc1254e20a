"""Read models: what the pages, the dashboard and the CLI show is what the rows say."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from cheaptokens.alerts import raise_alert
from cheaptokens.orders import views
from cheaptokens.orders.quotes import create_quote
from cheaptokens.orders.transitions import sweep_expired
from support.unitkit import (
    DAY,
    START,
    A,
    B,
    Env,
    cancelled,
    failed,
    fulfilled,
    get_order,
    paid,
    place,
    refunded,
    room,
)


def shop_day(env: Env) -> dict[str, str]:
    """One order in each state, a minute apart, on today's date."""
    made: dict[str, str] = {}
    for name, builder in [
        ("fulfilled", fulfilled),
        ("paid", paid),
        ("failed", failed),
        ("refunded", refunded),
        ("cancelled", cancelled),
        ("awaiting", lambda e, c: place(e, c).order.id),
    ]:
        made[name] = builder(env, 200 + 100 * len(made))
        env.clock.advance(60)
    return made


def test_sales_on_lists_the_days_paid_sales_oldest_first(env: Env) -> None:
    made = shop_day(env)
    with env.db.read() as s:
        sales = views.sales_on(s, day=DAY)
        assert views.sales_on(s, day=DAY + timedelta(days=1)) == []
    expected = [get_order(env, made[n]) for n in ("fulfilled", "paid", "failed")]
    assert sales == [views.Sale(o.paid_at, o.credit_cents, o.price_cents) for o in expected]  # type: ignore[arg-type]


def test_today_sums_what_was_sold_and_shows_each_account(env: Env) -> None:
    made = shop_day(env)
    sold = [get_order(env, made[n]) for n in ("fulfilled", "paid", "failed")]
    with env.db.read() as s:
        today = views.today(s, day=DAY)
    assert today.credit_sold_cents == sum(o.credit_cents for o in sold) == 200 + 300 + 400
    assert today.revenue_cents == sum(o.price_cents for o in sold)
    assert today.orders == 3
    assert [(a.name, a.sold_cents, a.reserved_cents) for a in today.accounts] == [
        (A, room(env, A).sold, room(env, A).reserved),
        (B, room(env, B).sold, room(env, B).reserved),
    ]
    assert today.accounts[0].left_cents == room(env, A).left


def test_the_average_discount_is_what_buyers_did_not_pay() -> None:
    assert views.Today(DAY, [], 1_000, 750, 2).average_discount_percent == "25.0 %"
    assert views.Today(DAY, [], 300, 299, 1).average_discount_percent == "0.3 %"
    assert views.Today(DAY, [], 0, 0, 0).average_discount_percent == "—"


def test_past_days_are_newest_first_with_capacity_sales_and_revenue(env: Env) -> None:
    env.clock.now = START - timedelta(days=1)
    old = fulfilled(env, 500)
    env.clock.now = START
    new = paid(env, 800)
    refunded(env, 300)
    with env.db.read() as s:
        past = views.past_days(s, today=DAY)
        assert len(views.past_days(s, today=DAY, days=1)) == 1
    capacity = room(env, A).capacity + room(env, B).capacity
    assert past == [
        views.PastDay(DAY, capacity, 800, get_order(env, new).price_cents),
        views.PastDay(DAY - timedelta(days=1), capacity, 500, get_order(env, old).price_cents),
    ]
    assert past[0].wasted_cents == capacity - 800


def test_recent_orders_are_newest_first_and_filter_by_status(env: Env) -> None:
    made = shop_day(env)
    with env.db.read() as s:
        rows = views.recent_orders(s)
        two = views.recent_orders(s, limit=2)
        only_paid = views.recent_orders(s, status="paid")
    assert [r.id for r in rows] == list(reversed(made.values()))
    assert [r.id for r in two] == [made["awaiting"], made["cancelled"]]
    assert [r.id for r in only_paid] == [made["paid"]]
    by_id = {r.id: r for r in rows}
    assert {n for n, o in made.items() if by_id[o].refundable} == {"fulfilled", "paid", "failed"}
    last6 = get_order(env, made["fulfilled"]).key_last6
    assert last6 is not None and by_id[made["fulfilled"]].key_last6 == last6


def test_order_detail_has_the_orders_ledger_oldest_first(env: Env) -> None:
    order_id = refunded(env, 400)
    with env.db.read() as s:
        detail = views.order_detail(s, order_id=order_id)
        assert views.order_detail(s, order_id="ord_" + "0" * 32) is None
    assert detail is not None and detail.order.id == order_id
    assert [r.kind for r in detail.ledger] == [
        "order_placed",
        "payment_received",
        "credit_sold",
        "refund_requested",
        "credit_released",
        "refunded",
    ]
    assert [r.credit_cents for r in detail.ledger if r.kind == "credit_released"] == [-400]


def test_recent_alerts_are_newest_first(env: Env) -> None:
    with env.db.begin() as s:
        raise_alert(s, kind="one", message="first", now=START)
        raise_alert(s, kind="two", message="second", now=START + timedelta(1), account=A)
    with env.db.read() as s:
        assert [(a.kind, a.account) for a in views.recent_alerts(s)] == [("two", A), ("one", None)]
        assert len(views.recent_alerts(s, limit=1)) == 1


def test_settled_quotes_are_the_quotes_whose_outcome_is_known(env: Env) -> None:
    with env.db.begin() as s:
        create_quote(s, rules=env.rules, credit_cents=150, now=env.now)  # lapses below
    env.clock.advance(env.rules.quote_ttl.total_seconds())
    with env.db.begin() as s:
        assert sweep_expired(s, now=env.now) == 1
    made = shop_day(env)
    with env.db.begin() as s:
        create_quote(s, rules=env.rules, credit_cents=999, now=env.now)  # still open
    with env.db.read() as s:
        records = views.settled_quotes(s, since=START, until=env.now + timedelta(seconds=1))
        later = env.now + timedelta(seconds=1)
        assert views.settled_quotes(s, since=later, until=later + timedelta(days=1)) == []
    got = {r.requested_cents: r.accepted for r in records}
    credits = {n: get_order(env, o).credit_cents for n, o in made.items()}
    assert got == {
        150: False,  # lapsed quote
        credits["fulfilled"]: True,
        credits["paid"]: True,
        credits["failed"]: True,
        credits["refunded"]: True,  # the buyer did pay
        credits["cancelled"]: False,
    }
    fulfilled_order = get_order(env, made["fulfilled"])
    (rec,) = [r for r in records if r.requested_cents == fulfilled_order.credit_cents]
    assert rec.price_fraction == Decimal(fulfilled_order.price_cents) / fulfilled_order.credit_cents
