"""The warm pool's rows: ready keys of today, claimed by one order, released, discarded."""

from __future__ import annotations

from datetime import datetime, timedelta

from cheaptokens.inventory import pool
from cheaptokens.models import PoolKey
from support.unitkit import MIDNIGHT, START, A, B, Env


def add(
    env: Env,
    key_id: str,
    account: str = A,
    *,
    created: datetime = START,
    expires: datetime = MIDNIGHT,
) -> None:
    with env.db.begin() as s:
        pool.add_ready(
            s,
            key_id=key_id,
            account=account,
            day=created.date(),
            secret=b"sealed",
            last6="abcdef",
            expires_at=expires,
            now=created,
        )


def claim(env: Env, account: str = A, order_id: str = "ord_1") -> str | None:
    with env.db.begin() as s:
        row = pool.claim(s, account=account, order_id=order_id, now=env.now)
        return row.key_id if row is not None else None


def row(env: Env, key_id: str) -> PoolKey:
    with env.db.read() as s:
        found = s.get(PoolKey, key_id)
    assert found is not None
    return found


def ready(env: Env, account: str = A) -> int:
    with env.db.read() as s:
        return pool.ready_count(s, account=account, now=env.now)


def test_ready_count_counts_todays_ready_keys_of_the_account(env: Env) -> None:
    add(env, "k1")
    add(env, "k2")
    add(env, "kb", B)
    add(env, "old", created=START - timedelta(days=1), expires=START)
    assert (ready(env, A), ready(env, B)) == (2, 1)
    claim(env)
    assert ready(env, A) == 1


def test_claim_takes_the_oldest_ready_key_for_the_order(env: Env) -> None:
    add(env, "newer", created=START - timedelta(minutes=1))
    add(env, "older", created=START - timedelta(minutes=2))
    assert claim(env, order_id="ord_1") == "older"
    found = row(env, "older")
    assert (found.status, found.order_id, found.claimed_at) == ("claimed", "ord_1", env.now)
    assert claim(env, order_id="ord_2") == "newer"
    assert claim(env, order_id="ord_3") is None


def test_claim_skips_keys_of_another_day_or_already_dead(env: Env) -> None:
    add(env, "yesterday", created=START - timedelta(days=1), expires=MIDNIGHT)
    add(env, "dead", expires=START)
    assert claim(env) is None
    assert claim(env, B) is None


def test_release_puts_a_claimed_key_back(env: Env) -> None:
    add(env, "k1")
    with env.db.begin() as s:
        claimed = pool.claim(s, account=A, order_id="ord_1", now=env.now)
        assert claimed is not None
        pool.release(claimed)
    found = row(env, "k1")
    assert (found.status, found.order_id, found.claimed_at) == ("ready", None, None)


def test_claimed_for_finds_the_orders_claimed_key_only(env: Env) -> None:
    add(env, "k1")
    add(env, "k2")
    claim(env, order_id="ord_1")
    with env.db.read() as s:
        found = pool.claimed_for(s, order_id="ord_1")
        assert found is not None and found.key_id == "k1"
        assert pool.claimed_for(s, order_id="ord_2") is None


def test_discard_takes_a_key_out_of_the_pool_for_good(env: Env) -> None:
    add(env, "k1")
    with env.db.begin() as s:
        pool.discard(s, key_id="k1")
    assert row(env, "k1").status == "deleted"
    assert ready(env) == 0 and claim(env) is None


def test_the_shop_owns_ready_and_claimed_keys_only(env: Env) -> None:
    for key_id in ("ready", "claimed", "sold", "deleted"):
        add(env, key_id)
    with env.db.begin() as s:
        for key_id in ("claimed", "sold", "deleted"):
            found = s.get(PoolKey, key_id)
            assert found is not None
            found.status = key_id
    with env.db.read() as s:
        owned = {k: pool.owns(s, key_id=k) for k in ("ready", "claimed", "sold", "deleted", "x")}
    assert owned == {"ready": True, "claimed": True, "sold": False, "deleted": False, "x": False}


def test_due_for_deletion_lists_ready_keys_whose_day_is_over(env: Env) -> None:
    add(env, "taken", created=START - timedelta(minutes=1))
    add(env, "k1")
    add(env, "kb", B)
    assert claim(env) == "taken"
    with env.db.read() as s:
        assert pool.due_for_deletion(s, now=MIDNIGHT - timedelta(seconds=1)) == []
        assert sorted(pool.due_for_deletion(s, now=MIDNIGHT)) == [("k1", A), ("kb", B)]
