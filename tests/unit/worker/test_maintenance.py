"""Upkeep: midnight expiry, key usage, reconciliation with Venice, account balances."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from cheaptokens import inventory
from cheaptokens.models import Account
from cheaptokens.orders import live_keys as lk
from cheaptokens.orders import state as st
from cheaptokens.venice import errors
from cheaptokens.venice.types import ConsumptionLimit
from cheaptokens.worker import maintenance
from cheaptokens.worker.maintenance import POOL_GRACE
from cheaptokens.worker.watch import watch
from support.unitkit import (
    MIDNIGHT,
    A,
    B,
    Env,
    alerts,
    fulfilled,
    get_order,
    kinds,
    live_keys,
    paid,
    pool_key,
    refunded,
)

NO_CAP = ConsumptionLimit(diem=Decimal(0), usd=Decimal(0))


def expire_keys(env: Env) -> int:
    return maintenance.expire_keys(db=env.db, gateways=env.gateways, clock=env.clock)


def reconcile(env: Env) -> list[str]:
    return maintenance.reconcile(db=env.db, gateways=env.gateways, clock=env.clock)


def stray_key(env: Env, description: str, account: str = A) -> str:
    """A key in Venice the database knows nothing of."""
    return env.gateways[account].create_key(description=description, consumption_limit=NO_CAP).id


# ----------------------------------------------------------------------------- expiry
def test_nothing_expires_before_midnight(env: Env) -> None:
    fulfilled(env)
    env.clock.now = MIDNIGHT - timedelta(seconds=1)
    env.gateways[A].calls.clear()
    assert expire_keys(env) == 0
    assert env.gateways[A].calls == []


def test_after_midnight_each_key_is_deleted_and_its_order_expired(env: Env) -> None:
    one, two = fulfilled(env, 300), fulfilled(env, 400)
    keys = {get_order(env, o).key_id for o in (one, two)}
    env.clock.now = MIDNIGHT
    assert expire_keys(env) == 2
    assert {c.args["key_id"] for c in env.gateways[A].called("delete_key")} == keys
    for order_id in (one, two):
        order = get_order(env, order_id)
        assert (order.status, order.key_secret, order.key_deleted_at) == (
            st.EXPIRED,
            None,
            MIDNIGHT,
        )
        assert kinds(env, order_id)[-1] == "key_expired"
    assert expire_keys(env) == 0


def test_a_key_venice_could_not_delete_is_expired_next_round(env: Env) -> None:
    order_id = fulfilled(env)
    env.clock.now = MIDNIGHT + timedelta(seconds=1)
    env.gateways[A].fail("delete_key", errors.Unavailable("502"))
    expire_keys(env)
    assert get_order(env, order_id).status == st.FULFILLED
    expire_keys(env)
    assert get_order(env, order_id).status == st.EXPIRED


# ----------------------------------------------------------------------------- usage
def test_usage_is_stored_in_cents_rounded_up(env: Env) -> None:
    one, two = fulfilled(env), fulfilled(env)
    fake = env.gateways[A]
    fake.keys[get_order(env, one).key_id].usage_diem = Decimal("1.2301")  # type: ignore[index]
    fake.keys[get_order(env, two).key_id].usage_diem = Decimal("0.5")  # type: ignore[index]
    env.clock.advance(60)
    report = watch(db=env.db, gateways=env.gateways, rules=env.rules, clock=env.clock)
    assert report.keys == 2 and report.replacing == []
    assert (get_order(env, one).used_cents, get_order(env, one).usage_checked_at) == (124, env.now)
    assert get_order(env, two).used_cents == 50


def test_usage_is_one_list_per_account_whatever_the_number_of_keys(env: Env) -> None:
    for _ in range(5):
        fulfilled(env)
    refunded(env)
    paid(env)
    watch(db=env.db, gateways=env.gateways, rules=env.rules, clock=env.clock)
    assert len(env.gateways[A].called("list_keys")) == 1
    assert env.gateways[A].called("get_key") == []


def test_an_account_venice_does_not_answer_for_keeps_its_last_reading(env: Env) -> None:
    one = fulfilled(env)
    env.gateways[A].keys[get_order(env, one).key_id].usage_diem = Decimal("0.5")  # type: ignore[index]
    watch(db=env.db, gateways=env.gateways, rules=env.rules, clock=env.clock)
    env.gateways[A].fail("list_keys", errors.Unavailable("down"))
    env.clock.advance(60)
    report = watch(db=env.db, gateways=env.gateways, rules=env.rules, clock=env.clock)
    assert report.unreachable == [A] and report.replacing == []
    assert get_order(env, one).used_cents == 50  # nothing replaced on a failed look


# ----------------------------------------------------------------------------- reconcile
def test_reconcile_deletes_shop_keys_no_order_keeps_and_says_so(env: Env) -> None:
    gone = refunded(env)
    orphan = stray_key(env, f"cheaptokens:{gone}")
    second = fulfilled(env)
    extra = stray_key(env, f"cheaptokens:{second}")  # a second key for a fulfilled order
    junk = stray_key(env, "cheaptokens:" + "x" * 60, B)
    assert sorted(reconcile(env)) == sorted([orphan, extra, junk])
    assert {k.id for k in live_keys(env)} == {get_order(env, second).key_id}
    by_key = {a.message.split()[2]: a for a in alerts(env, "reconcile")}
    assert set(by_key) == {orphan, extra, junk}
    assert (by_key[orphan].order_id, by_key[orphan].account) == (gone, A)
    assert (by_key[junk].order_id, by_key[junk].account) == (None, B)


def test_reconcile_keeps_pool_keys_keys_being_provisioned_and_foreign_keys(env: Env) -> None:
    ready = pool_key(env, A)
    in_progress = paid(env)
    being_made = stray_key(env, f"cheaptokens:{in_progress}")
    operators = stray_key(env, "my own key")
    young_unknown_pool = stray_key(env, "cheaptokens:pool:feedfacefeedface")
    env.clock.advance(POOL_GRACE.total_seconds() - 1)
    assert reconcile(env) == []
    assert {ready, being_made, operators, young_unknown_pool} <= {k.id for k in live_keys(env)}
    env.clock.advance(1)
    assert reconcile(env) == [young_unknown_pool]  # the pool never recorded it


def test_reconcile_carries_on_past_an_account_venice_does_not_answer_for(env: Env) -> None:
    orphan_b = stray_key(env, "cheaptokens:ord_" + "0" * 32, B)
    env.gateways[A].fail("list_keys", errors.Unavailable("down"))
    assert reconcile(env) == [orphan_b]


def test_owner_of_names_who_keeps_a_key(env: Env) -> None:
    shipped = fulfilled(env)
    waiting = paid(env)
    ready = pool_key(env, A)
    with env.db.read() as s:

        def owner(key_id: str, description: str) -> str | None:
            return lk.owner_of(s, key_id=key_id, description=description)

        key_id = get_order(env, shipped).key_id or ""
        assert owner(ready, "cheaptokens:pool:abc") == "pool"
        assert owner("k-unknown", "cheaptokens:pool:abc") is None
        assert owner(key_id, f"cheaptokens:{shipped}") == shipped
        assert owner("k-other", f"cheaptokens:{shipped}") is None
        assert owner("k-any", f"cheaptokens:{waiting}") == waiting
        assert owner("k-any", "cheaptokens:not-an-order") is None


# ----------------------------------------------------------------------------- balances
def test_refresh_accounts_records_allocations_and_keeps_the_last_on_failure(env: Env) -> None:
    env.gateways[A].diem_allocation = Decimal("123.456")
    env.gateways[B].fail("balance", errors.Unavailable("down"))
    assert maintenance.refresh_accounts(db=env.db, gateways=env.gateways, clock=env.clock) == 1
    with env.db.read() as s:
        a, b = s.get(Account, A), s.get(Account, B)
    assert a is not None and b is not None
    assert (a.diem_allocation_cents, a.last_error) == (12_345, None)
    assert b.diem_allocation_cents == 5_000 and "Unavailable" in (b.last_error or "")
    with env.db.begin() as s:  # tomorrow's capacity follows the new allocation
        inventory.ensure_day(
            s, day=MIDNIGHT.date(), sell_fraction=env.rules.sell_fraction, margin_cents=0
        )
        assert inventory.supply(s, day=MIDNIGHT.date()).rooms == ((A, 11_110), (B, 4_500))
