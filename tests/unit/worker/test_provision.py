"""worker.provision against the fake Venice: exactly one live key per paid order."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cheaptokens import jobs
from cheaptokens.models import PoolKey
from cheaptokens.orders import state as st
from cheaptokens.venice import errors
from cheaptokens.venice.types import ConsumptionLimit
from cheaptokens.worker.provision import provision
from support.unitkit import (
    MIDNIGHT,
    A,
    B,
    Env,
    alerts,
    claim,
    get_order,
    jobs_of,
    live_keys,
    paid,
    pool_key,
    run_provision,
    use_creation_budget,
)

FIVE_DOLLARS = ConsumptionLimit(diem=Decimal("5.00"), usd=Decimal("0.00"))


def provision_with(env: Env, order_id: str, lease: jobs.Lease) -> None:
    provision(
        db=env.db,
        gateways=env.gateways,
        box=env.box,
        rules=env.rules,
        clock=env.clock,
        order_id=order_id,
        lease=lease,
    )


def retry(env: Env, order_id: str) -> jobs.Retry:
    with pytest.raises(jobs.Retry) as caught:
        run_provision(env, order_id)
    env.clock.advance(caught.value.delay)
    return caught.value


def the_key_of(env: Env, order_id: str) -> str:
    """The one live key naming the order, which must be the one the order holds."""
    (key,) = live_keys(env, order_id)
    order = get_order(env, order_id)
    assert order.status == st.FULFILLED and order.key_id == key.id
    assert order.key_secret is not None
    assert env.box.open(order.key_secret, context=order_id) == key.secret
    return key.id


def test_a_paid_order_gets_exactly_one_key_capped_in_diem_for_the_epoch(env: Env) -> None:
    order_id = paid(env, 500)
    run_provision(env, order_id)
    key_id = the_key_of(env, order_id)
    (call,) = env.gateways[A].called("create_key")
    assert call.args == {
        "description": f"cheaptokens:{order_id}",
        "consumption_limit": FIVE_DOLLARS,
        "limit_period": "EPOCH",
        "expires_at": MIDNIGHT,
        "key_type": "INFERENCE",
        "model_privacy": "PRIVATE_ONLY",  # private models only, unless sold otherwise
    }
    assert env.gateways[B].calls == []
    assert get_order(env, order_id).key_expires_at == MIDNIGHT
    assert jobs_of(env, order_id) == {"provision": "done"}
    assert env.gateways[A].keys[key_id].limit == FIVE_DOLLARS


def test_a_lost_creation_answer_is_cleaned_up_before_creating_again(env: Env) -> None:
    order_id = paid(env)
    env.gateways[A].fail("create_key", errors.OutcomeUnknown("timeout"), take_effect=True)
    assert retry(env, order_id).delay == 2.0
    (orphan,) = live_keys(env, order_id)  # Venice made it; the shop never saw its secret
    assert get_order(env, order_id).status == st.PAID
    run_provision(env, order_id)
    assert the_key_of(env, order_id) != orphan.id
    methods = [(c.method, c.args.get("key_id")) for c in env.gateways[A].calls]
    assert methods == [
        ("create_key", None),
        ("list_keys", None),
        ("delete_key", orphan.id),
        ("create_key", None),
    ]


def test_venice_unavailable_before_creating_is_retried_then_looks_first(env: Env) -> None:
    order_id = paid(env)
    env.gateways[A].fail("create_key", errors.Unavailable("503"))
    retry(env, order_id)
    assert live_keys(env, order_id) == []
    run_provision(env, order_id)
    the_key_of(env, order_id)
    assert [c.method for c in env.gateways[A].calls] == ["create_key", "list_keys", "create_key"]


@pytest.mark.parametrize(("hint", "delay"), [(7.0, 7.0), (None, 3.0), (1.0, 3.0)])
def test_rate_limited_creation_is_retried_after_venices_hint(
    env: Env, hint: float | None, delay: float
) -> None:
    order_id = paid(env)
    env.gateways[A].fail("create_key", errors.RateLimited("429", retry_after=hint))
    assert retry(env, order_id).delay == delay
    assert live_keys(env, order_id) == [] and get_order(env, order_id).status == st.PAID
    assert jobs_of(env, order_id) == {"provision": "queued"}
    run_provision(env, order_id)
    the_key_of(env, order_id)


def test_venice_refusing_the_creation_raises_an_alert_and_retries_later(env: Env) -> None:
    order_id = paid(env)
    env.gateways[A].fail("create_key", errors.InvalidRequest("bad field", status=400))
    assert retry(env, order_id).delay == 30.0
    (alert,) = alerts(env, "provision_failed")
    assert (alert.order_id, alert.account) == (order_id, A)


def test_an_order_on_an_account_no_longer_configured_waits_with_an_alert(env: Env) -> None:
    order_id = paid(env)
    del env.gateways[A]
    assert retry(env, order_id).delay == 60
    (alert,) = alerts(env, "account_missing")
    assert (alert.order_id, alert.account) == (order_id, A)
    assert get_order(env, order_id).status == st.PAID


def test_a_sale_moved_for_key_room_gets_its_key_on_the_new_account(env: Env) -> None:
    order_id = paid(env)
    use_creation_budget(env, A)
    run_provision(env, order_id)
    key_id = the_key_of(env, order_id)
    assert key_id in env.gateways[B].keys and env.gateways[A].calls == []
    assert get_order(env, order_id).account == B


# ----------------------------------------------------------------------------- pool keys
def test_a_pool_key_is_raised_to_the_orders_cap_and_renamed_not_created(env: Env) -> None:
    key_id = pool_key(env, A)
    order_id = paid(env)
    env.gateways[A].calls.clear()
    run_provision(env, order_id)
    assert the_key_of(env, order_id) == key_id
    (call,) = env.gateways[A].calls
    assert (call.method, call.args["key_id"]) == ("update_key", key_id)
    assert call.args["description"] == f"cheaptokens:{order_id}"
    assert call.args["consumption_limit"] == FIVE_DOLLARS
    assert env.gateways[A].keys[key_id].limit == FIVE_DOLLARS
    with env.db.read() as s:
        assert s.get(PoolKey, key_id).status == "sold"  # type: ignore[union-attr]


def test_a_vanished_pool_key_falls_back_to_creating_one(env: Env) -> None:
    key_id = pool_key(env, A)
    env.gateways[A].keys[key_id].deleted_at = env.now  # gone in Venice behind the shop's back
    order_id = paid(env)
    assert retry(env, order_id).delay == pytest.approx(0.1)
    with env.db.read() as s:
        assert s.get(PoolKey, key_id).status == "deleted"  # type: ignore[union-attr]
    run_provision(env, order_id)
    assert the_key_of(env, order_id) != key_id


@pytest.mark.parametrize(
    "error", [errors.Unavailable("502"), errors.RateLimited("429", retry_after=4.0)]
)
def test_a_pool_patch_that_fails_is_retried_with_the_same_key(
    env: Env, error: errors.VeniceError
) -> None:
    key_id = pool_key(env, A)
    order_id = paid(env)
    env.gateways[A].fail("update_key", error)
    retry(env, order_id)
    assert get_order(env, order_id).status == st.PAID
    run_provision(env, order_id)
    assert the_key_of(env, order_id) == key_id


# ----------------------------------------------------------------------------- fencing
def test_a_worker_that_lost_its_lease_deletes_the_key_it_just_made(env: Env) -> None:
    order_id = paid(env)
    w1 = claim(env, jobs.PROVISION, order_id, worker="w1")
    taken: list[jobs.Lease] = []

    def take_over() -> None:  # w1 stalls past its lease inside the call; w2 takes the job
        env.clock.advance(env.rules.job_lease.total_seconds() + 1)
        taken.append(claim(env, jobs.PROVISION, order_id, worker="w2"))

    env.gateways[A].on("create_key", take_over)
    with pytest.raises(jobs.Retry):
        provision_with(env, order_id, w1)
    (made,) = env.gateways[A].keys.values()
    (deleted,) = env.gateways[A].called("delete_key")
    assert deleted.args["key_id"] == made.id and made.deleted_at is not None
    assert get_order(env, order_id).status == st.PAID
    provision_with(env, order_id, taken[0])  # w2 finishes the order
    assert the_key_of(env, order_id) != made.id


def test_running_the_job_again_after_fulfilment_calls_venice_no_more(env: Env) -> None:
    order_id = paid(env)
    lease = claim(env, jobs.PROVISION, order_id)
    provision_with(env, order_id, lease)
    calls = len(env.gateways[A].calls)
    provision_with(env, order_id, lease)
    assert len(env.gateways[A].calls) == calls
    the_key_of(env, order_id)


def test_past_the_deadline_no_key_is_made_and_a_refund_is_queued(env: Env) -> None:
    order_id = paid(env)
    env.clock.advance(env.rules.provision_deadline.total_seconds())
    run_provision(env, order_id)
    assert env.gateways[A].calls == [] and live_keys(env) == []
    assert jobs_of(env, order_id) == {"provision": "done", "refund": "queued"}
