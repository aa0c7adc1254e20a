"""Key room: creations in Venice's sliding minute, live keys against the cap."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cheaptokens.inventory import keyroom
from support.unitkit import (
    MIDNIGHT,
    A,
    B,
    Env,
    expired,
    fulfilled,
    ledger,
    paid,
    refund_requested,
    run_refund,
    use_creation_budget,
)


def count(env: Env, fn: str, account: str = A) -> int:
    with env.db.read() as s:
        result: int = getattr(keyroom, fn)(s, account, env.now)
    return result


def has_room(env: Env, account: str = A, *, per_minute: int = 20, max_keys: int = 490) -> bool:
    with env.db.read() as s:
        return keyroom.has_room(s, account, env.now, per_minute=per_minute, max_keys=max_keys)


def wait(env: Env, account: str = A) -> float:
    with env.db.read() as s:
        return keyroom.budget_wait(s, account, env.now)


def test_record_creation_writes_an_attempt_row(env: Env) -> None:
    with env.db.begin() as s:
        keyroom.record_creation(s, account=A, now=env.now, order_id="ord_x")
        keyroom.record_creation(s, account=B, now=env.now, pool=True)
    one, two = ledger(env, kind=keyroom.CREATE_ATTEMPT)
    assert (one.account, one.order_id, one.detail, one.at) == (A, "ord_x", None, env.now)
    assert (two.account, two.order_id, two.detail) == (B, None, {"pool": True})


def test_creations_count_per_account_within_the_last_minute_only(env: Env) -> None:
    use_creation_budget(env, A, seconds_ago=60, count=3)  # exactly a minute ago: out
    use_creation_budget(env, A, seconds_ago=59, count=2)
    use_creation_budget(env, B, seconds_ago=1, count=4)
    assert (count(env, "creations_in_window", A), count(env, "creations_in_window", B)) == (2, 4)


def test_live_order_keys_count_keys_not_deleted_and_not_expired(env: Env) -> None:
    fulfilled(env)
    fulfilled(env)
    gone = fulfilled(env)
    refund_requested(env, gone)
    run_refund(env, gone)  # its key is deleted first
    paid(env)  # no key yet
    assert count(env, "live_order_keys", A) == 2
    assert count(env, "live_order_keys", B) == 0
    env.clock.now = MIDNIGHT
    assert count(env, "live_order_keys", A) == 0


def test_an_expired_order_holds_no_live_key(env: Env) -> None:
    expired(env)
    env.clock.now = MIDNIGHT - timedelta(hours=1)  # even looked at from before 00:00
    assert count(env, "live_order_keys", A) == 0


@pytest.mark.parametrize(("creations", "expected"), [(19, True), (20, False)])
def test_has_room_stops_at_the_creation_budget(env: Env, creations: int, expected: bool) -> None:
    use_creation_budget(env, A, count=creations)
    assert has_room(env) is expected
    assert has_room(env, B)


@pytest.mark.parametrize(("max_keys", "expected"), [(3, True), (2, False)])
def test_has_room_stops_at_the_key_cap(env: Env, max_keys: int, expected: bool) -> None:
    fulfilled(env)
    fulfilled(env)
    assert has_room(env, max_keys=max_keys) is expected


def test_budget_wait_is_until_the_oldest_creation_leaves_the_window(env: Env) -> None:
    assert wait(env) == 5.0  # none known
    use_creation_budget(env, A, seconds_ago=45, count=1)
    use_creation_budget(env, A, seconds_ago=10, count=1)
    assert wait(env) == pytest.approx(15.0)
    assert wait(env, B) == 5.0
    env.clock.advance(14.5)
    assert wait(env) == 1.0  # never less than a second
