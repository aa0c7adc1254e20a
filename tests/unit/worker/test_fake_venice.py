"""The fake Venice keeps the client's contract for the calls the shop makes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from cheaptokens.venice import errors
from cheaptokens.venice.keys import delete_described, ensure_deleted
from cheaptokens.venice.types import ConsumptionLimit
from support.fake_venice import FakeVenice
from support.unitkit import MIDNIGHT, START, Clock

CAP = ConsumptionLimit(diem=Decimal("5.00"), usd=Decimal("0.00"))


@pytest.fixture
def fake() -> FakeVenice:
    return FakeVenice(clock=Clock(START), name="a")


def make(fake: FakeVenice, description: str = "d", expires: object = MIDNIGHT) -> str:
    return fake.create_key(
        description=description,
        consumption_limit=CAP,
        expires_at=expires,  # type: ignore[arg-type]
    ).id


def test_a_created_key_shows_its_secret_once_and_is_listed_without_it(fake: FakeVenice) -> None:
    created = fake.create_key(description="d", consumption_limit=CAP, expires_at=MIDNIGHT)
    assert created.api_key.startswith("VENICE_INFERENCE_KEY_")
    (listed,) = fake.list_keys()
    assert (listed.id, listed.last6, listed.description) == (created.id, created.api_key[-6:], "d")
    assert (listed.consumption_limits, listed.limit_period, listed.expires_at) == (
        CAP,
        "EPOCH",
        MIDNIGHT,
    )
    assert fake.get_key(created.id) == listed


def test_deleted_and_expired_keys_are_gone_for_every_call(fake: FakeVenice) -> None:
    deleted, dying, kept = make(fake), make(fake, expires=START + timedelta(seconds=1)), make(fake)
    fake.delete_key(deleted)
    fake.clock.advance(1)  # type: ignore[attr-defined]
    assert [k.id for k in fake.list_keys()] == [kept]
    for key_id in (deleted, dying, "nope"):
        for call in (fake.get_key, fake.delete_key, lambda k: fake.update_key(k, description="x")):
            with pytest.raises(errors.NotFound):
                call(key_id)
    ensure_deleted(fake, deleted)  # the shop's recipe counts "gone" as done


def test_update_changes_only_the_fields_given(fake: FakeVenice) -> None:
    key_id = make(fake, "before")
    raised = ConsumptionLimit(diem=Decimal("7.00"), usd=Decimal("0.00"))
    patched = fake.update_key(key_id, consumption_limit=raised)
    assert (patched.description, patched.consumption_limits) == ("before", raised)
    assert patched.period_usage_diem is None  # PATCH answers carry no usage


def test_list_is_newest_first_and_delete_described_removes_by_exact_description(
    fake: FakeVenice,
) -> None:
    old = make(fake, "cheaptokens:x")
    fake.clock.advance(1)  # type: ignore[attr-defined]
    new = make(fake, "cheaptokens:x")
    other = make(fake, "cheaptokens:xy")
    assert [k.id for k in fake.list_keys()][1:] == [new, old]
    assert sorted(delete_described(fake, "cheaptokens:x")) == sorted([old, new])
    assert [k.id for k in fake.list_keys()] == [other]


def test_venices_creation_limits_hold(fake: FakeVenice) -> None:
    for _ in range(20):
        make(fake)
    with pytest.raises(errors.RateLimited):
        make(fake)
    fake.clock.advance(60)  # type: ignore[attr-defined]
    make(fake)


def test_scripted_failures_raise_before_or_after_the_call_takes_effect(fake: FakeVenice) -> None:
    fake.fail("create_key", errors.OutcomeUnknown("lost"), take_effect=True)
    fake.fail("list_keys", errors.Unavailable("down"), times=2)
    with pytest.raises(errors.OutcomeUnknown):
        make(fake, "made anyway")
    for _ in range(2):
        with pytest.raises(errors.Unavailable):
            fake.list_keys()
    assert [k.description for k in fake.list_keys()] == ["made anyway"]
    assert [c.method for c in fake.calls] == ["create_key"] + ["list_keys"] * 3


def test_balance_answers_the_allocation(fake: FakeVenice) -> None:
    fake.diem_allocation = Decimal("42.5")
    assert fake.balance().diem_epoch_allocation == Decimal("42.5")
