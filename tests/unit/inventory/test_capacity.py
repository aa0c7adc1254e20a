"""Capacity per account and day: no oversell, whatever the order of operations."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from sqlalchemy import select
from sqlalchemy.orm import Session

from cheaptokens import inventory
from cheaptokens.db import Database
from cheaptokens.models import Account, AccountDay
from support.unitkit import DAY, START, A, B, Env, Room, make_env, room

FRACTION = Decimal("0.9")


def open_day(env: Env, margin_cents: int = 100) -> None:
    with env.db.begin() as s:
        inventory.ensure_day(s, day=DAY, sell_fraction=FRACTION, margin_cents=margin_cents)


def rows(session: Session) -> dict[str, tuple[int, int, int]]:
    found = session.scalars(select(AccountDay).where(AccountDay.day == DAY))
    return {r.account: (r.capacity_cents, r.sold_cents, r.reserved_cents) for r in found}


# ----------------------------------------------------------------------------- opening a day
@pytest.mark.parametrize(
    ("allocation", "margin", "expected"),
    [(10_000, 50, 8_950), (999, 0, 899), (1_001, 1, 899), (100, 200, 0), (0, 0, 0)],
)
def test_day_capacity_is_the_floor_of_the_sellable_share_less_the_margin(
    allocation: int, margin: int, expected: int
) -> None:
    got = inventory.day_capacity(allocation, sell_fraction=FRACTION, margin_cents=margin)
    assert got == expected


def test_ensure_day_splits_the_margin_evenly_the_remainder_on_the_first(db: Database) -> None:
    env = make_env(db, allocations={"c": 3_000, "a": 1_000, "b": 2_000, "off": 5_000})
    with env.db.begin() as s:
        s.get(Account, "off").enabled = False  # type: ignore[union-attr]
    open_day(env, margin_cents=100)
    with env.db.read() as s:
        assert rows(s) == {"a": (900 - 34, 0, 0), "b": (1_800 - 33, 0, 0), "c": (2_700 - 33, 0, 0)}
        allocations = {r.account: r.allocation_cents for r in s.scalars(select(AccountDay))}
    assert allocations == {"a": 1_000, "b": 2_000, "c": 3_000}


def test_ensure_day_again_keeps_what_was_sold(env: Env) -> None:
    open_day(env)
    with env.db.begin() as s:
        assert inventory.reserve(s, day=DAY, credit_cents=700) == A
    open_day(env)
    assert room(env, A) == Room(8_950, 0, 700)


def test_ensure_day_with_no_enabled_account_opens_nothing(db: Database) -> None:
    env = make_env(db, allocations={})
    open_day(env)
    with env.db.read() as s:
        assert inventory.supply(s, day=DAY) == inventory.Supply(0, 0, 0, ())


def test_supply_sums_the_day_and_lists_the_roomiest_first(env: Env) -> None:
    open_day(env)
    with env.db.begin() as s:
        inventory.reserve(s, day=DAY, credit_cents=5_000)  # A: 3950 left, B: 4450
        inventory.sell(s, account=A, day=DAY, credit_cents=1_000)
        supply = inventory.supply(s, day=DAY)
    assert (supply.capacity_cents, supply.sold_cents, supply.reserved_cents) == (
        13_400,
        1_000,
        4_000,
    )
    assert supply.remaining_cents == 8_400
    assert supply.rooms == ((B, 4_450), (A, 3_950))


# ----------------------------------------------------------------------------- moving credit
def test_reserve_takes_the_roomiest_account_that_fits_or_none(env: Env) -> None:
    open_day(env)
    with env.db.begin() as s:
        assert inventory.reserve(s, day=DAY, credit_cents=8_000) == A
        assert inventory.reserve(s, day=DAY, credit_cents=4_450) == B
        assert inventory.reserve(s, day=DAY, credit_cents=951) is None
        assert inventory.reserve(s, day=DAY, credit_cents=950) == A
    assert (room(env, A).left, room(env, B).left) == (0, 0)


def test_reserve_rechecks_the_room_a_stale_supply_promised(env: Env) -> None:
    open_day(env)
    with env.db.begin() as s:
        stale = inventory.supply(s, day=DAY)
        inventory.reserve(s, day=DAY, credit_cents=8_950)  # someone takes all of A
        assert inventory.reserve(s, day=DAY, credit_cents=500, supply=stale) == B
        assert inventory.reserve(s, day=DAY, credit_cents=4_000, supply=stale) is None
    assert (room(env, A).reserved, room(env, B).reserved) == (8_950, 500)


def test_sell_release_and_unsell_move_credit_between_the_columns(env: Env) -> None:
    open_day(env)
    with env.db.begin() as s:
        inventory.reserve(s, day=DAY, credit_cents=900)
        inventory.sell(s, account=A, day=DAY, credit_cents=600)
    assert (room(env, A).sold, room(env, A).reserved) == (600, 300)
    with env.db.begin() as s:
        inventory.release(s, account=A, day=DAY, credit_cents=300)
        inventory.unsell(s, account=A, day=DAY, credit_cents=200)
    assert (room(env, A).sold, room(env, A).reserved) == (400, 0)


def test_sell_unreserved_sells_only_when_the_room_is_there(env: Env) -> None:
    open_day(env)
    with env.db.begin() as s:
        assert inventory.sell_unreserved(s, account=B, day=DAY, credit_cents=4_000)
        assert not inventory.sell_unreserved(s, account=B, day=DAY, credit_cents=451)
        assert inventory.sell_unreserved(s, account=B, day=DAY, credit_cents=450)
        assert not inventory.sell_unreserved(s, account=B, day=DAY + timedelta(1), credit_cents=1)
    assert room(env, B) == Room(4_450, 4_450, 0)


# ----------------------------------------------------------------------------- allocations
def test_record_allocation_adds_an_account_and_updates_it(db: Database) -> None:
    env = make_env(db, allocations={})
    later = START + timedelta(minutes=5)
    with env.db.begin() as s:
        inventory.record_allocation(s, account="new", allocation_cents=1_234, now=START)
        inventory.record_allocation(s, account="new", allocation_cents=2_000, now=later)
    with env.db.read() as s:
        acct = s.get(Account, "new")
    assert acct is not None
    assert (acct.enabled, acct.diem_allocation_cents, acct.balance_checked_at) == (
        True,
        2_000,
        later,
    )


def test_a_failed_balance_read_keeps_the_last_allocation_and_notes_why(env: Env) -> None:
    with env.db.begin() as s:
        inventory.record_allocation(s, account=A, allocation_cents=None, now=START, error="x" * 900)
    with env.db.read() as s:
        acct = s.get(Account, A)
    assert acct is not None
    assert (acct.diem_allocation_cents, acct.last_error) == (10_000, "x" * 500)
    with env.db.begin() as s:
        inventory.record_allocation(s, account=A, allocation_cents=9_000, now=START)
    with env.db.read() as s:
        acct = s.get(Account, A)
    assert acct is not None and (acct.diem_allocation_cents, acct.last_error) == (9_000, None)


# ----------------------------------------------------------------------------- the property
@dataclass
class Model:
    """What the rows should say: each hold the test has, and where it is."""

    capacity: dict[str, int]
    holds: list[tuple[str, int, str]] = field(default_factory=list)  # account, cents, kind

    def total(self, account: str, kind: str) -> int:
        return sum(c for a, c, k in self.holds if a == account and k == kind)

    def left(self, account: str) -> int:
        return (
            self.capacity[account] - self.total(account, "sold") - self.total(account, "reserved")
        )


OPS = hs.lists(
    hs.tuples(
        hs.sampled_from(["reserve", "sell", "release", "unsell", "sell_unreserved"]),
        hs.integers(min_value=1, max_value=600),
        hs.integers(min_value=0, max_value=1_000),
        hs.sampled_from([A, B]),
    ),
    max_size=25,
)


def apply_op(s: Session, model: Model, op: str, cents: int, pick: int, account: str) -> None:
    kind = {"sell": "reserved", "release": "reserved", "unsell": "sold"}.get(op)
    if kind is not None:  # act on one of the holds of that kind, if any
        mine = [i for i, h in enumerate(model.holds) if h[2] == kind]
        if not mine:
            return
        i = mine[pick % len(mine)]
        account, cents, _ = model.holds[i]
        getattr(inventory, op)(s, account=account, day=DAY, credit_cents=cents)
        del model.holds[i]
        if op == "sell":
            model.holds.append((account, cents, "sold"))
    elif op == "reserve":
        fits = [a for a in model.capacity if model.left(a) >= cents]
        got = inventory.reserve(s, day=DAY, credit_cents=cents)
        assert (got is None) == (not fits)
        if got is not None:
            assert model.left(got) == max(model.left(a) for a in fits)
            model.holds.append((got, cents, "reserved"))
    else:
        ok = inventory.sell_unreserved(s, account=account, day=DAY, credit_cents=cents)
        assert ok == (model.left(account) >= cents)
        if ok:
            model.holds.append((account, cents, "sold"))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=OPS)
def test_no_sequence_of_operations_oversells(db: Database, ops: list[Any]) -> None:
    """Small accounts (850 and 400 cents to sell) against amounts up to 600, so that most
    sequences run into the limits. Each example runs in a transaction that is rolled back."""
    s = db.writes()
    try:
        for account, allocation in ((A, 1_000), (B, 500)):
            inventory.record_allocation(s, account=account, allocation_cents=allocation, now=START)
        inventory.ensure_day(s, day=DAY, sell_fraction=FRACTION, margin_cents=100)
        assert rows(s) == {A: (850, 0, 0), B: (400, 0, 0)}
        model = Model(capacity={a: c for a, (c, _, _) in rows(s).items()})
        for op in ops:
            apply_op(s, model, *op)
            for account, (capacity, sold, reserved) in rows(s).items():
                assert sold >= 0 and reserved >= 0 and sold + reserved <= capacity
                assert (sold, reserved) == (
                    model.total(account, "sold"),
                    model.total(account, "reserved"),
                )
    finally:
        s.rollback()
        s.close()
