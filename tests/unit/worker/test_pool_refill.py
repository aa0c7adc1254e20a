"""worker.pool: keys made ahead within the pool size, the creation budget and key room."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from cheaptokens.db import Database
from cheaptokens.inventory import keyroom
from cheaptokens.venice import errors
from cheaptokens.venice.types import ConsumptionLimit
from cheaptokens.worker import pool
from support.unitkit import (
    MIDNIGHT,
    A,
    B,
    Env,
    fulfilled,
    ledger,
    make_env,
    pool_rows,
    use_creation_budget,
)

NO_CAP = ConsumptionLimit(diem=Decimal(0), usd=Decimal(0))


def refill(env: Env, **kw: Any) -> int:
    return pool.refill(
        db=env.db, gateways=env.gateways, box=env.box, rules=env.rules, clock=env.clock, **kw
    )


def ready_by_account(env: Env) -> Counter[str]:
    return Counter(r.account for r in pool_rows(env, "ready"))


def test_refill_tops_each_account_up_to_the_pool_size_with_keys_that_spend_nothing(
    db: Database,
) -> None:
    env = make_env(db, pool_size=3)
    assert refill(env) == 6
    assert ready_by_account(env) == {A: 3, B: 3}
    for row in pool_rows(env):
        key = env.gateways[row.account].keys[row.key_id]
        assert (key.limit, key.limit_period, key.expires_at) == (NO_CAP, "EPOCH", MIDNIGHT)
        assert key.description.startswith("cheaptokens:pool:")
        assert env.box.open(row.secret, context=row.key_id) == key.secret
        assert (row.last6, row.day, row.expires_at) == (key.secret[-6:], env.now.date(), MIDNIGHT)
    pool_attempts = [e for e in ledger(env, kind=keyroom.CREATE_ATTEMPT) if e.detail]
    assert len(pool_attempts) == 6
    assert refill(env) == 0


def test_refill_leaves_the_headroom_of_each_minute_to_direct_sales(db: Database) -> None:
    env = make_env(db, pool_size=30, pool_creation_headroom=5)
    assert refill(env) == 30  # 15 per account: 20 a minute less 5
    assert ready_by_account(env) == {A: 15, B: 15}
    env.clock.advance(60)
    assert refill(env) == 30


def test_refill_counts_direct_creations_against_the_same_budget(db: Database) -> None:
    env = make_env(db, pool_size=10, pool_creation_headroom=5)
    use_creation_budget(env, A, count=12)
    refill(env)
    assert ready_by_account(env) == {A: 3, B: 10}


def test_refill_leaves_key_room_for_sold_keys(db: Database) -> None:
    env = make_env(db, pool_size=5, max_active_keys=4)
    fulfilled(env)
    fulfilled(env)  # two live keys on A: room for two more
    refill(env)
    assert ready_by_account(env) == {A: 2, B: 4}


def test_refill_stops_at_the_limit_and_when_the_pool_is_off(db: Database) -> None:
    env = make_env(db, pool_size=5)
    assert refill(env, limit=2) == 2 and sum(ready_by_account(env).values()) == 2
    off = make_env(db, pool_size=0)
    assert refill(off) == 0 and all(g.calls == [] for g in off.gateways.values())


def test_refill_stops_on_an_account_venice_refuses_and_goes_on_with_the_next(
    db: Database,
) -> None:
    env = make_env(db, pool_size=2)
    env.gateways[A].fail("create_key", errors.RateLimited("429"))
    assert refill(env) == 2
    assert ready_by_account(env) == {B: 2}


# ----------------------------------------------------------------------------- expiry
def test_expire_deletes_the_pools_ready_keys_whose_day_is_over(db: Database) -> None:
    env = make_env(db, pool_size=2)
    refill(env)
    fulfilled(env)  # takes one of A's pool keys
    env.clock.now = MIDNIGHT
    assert pool.expire(db=env.db, gateways=env.gateways, clock=env.clock) == 3
    deleted = {c.args["key_id"] for g in env.gateways.values() for c in g.called("delete_key")}
    assert deleted == {r.key_id for r in pool_rows(env, "deleted")}
    assert len(deleted) == 3 and len(pool_rows(env, "sold")) == 1
    assert pool.expire(db=env.db, gateways=env.gateways, clock=env.clock) == 0


def test_a_pool_key_venice_cannot_delete_stays_for_the_next_round(db: Database) -> None:
    env = make_env(db, allocations={A: 10_000}, pool_size=1)
    refill(env)
    env.clock.now = MIDNIGHT
    env.gateways[A].fail("delete_key", errors.Unavailable("down"))
    assert pool.expire(db=env.db, gateways=env.gateways, clock=env.clock) == 1
    assert len(pool_rows(env, "ready")) == 1
    pool.expire(db=env.db, gateways=env.gateways, clock=env.clock)
    assert pool_rows(env, "ready") == []
