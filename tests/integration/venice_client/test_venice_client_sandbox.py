"""VeniceClient against the in-process Venice sandbox (cheaptokens.sandbox)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import httpx
import pytest
from starlette.testclient import TestClient

from cheaptokens.sandbox import AccountSpec, Sandbox
from cheaptokens.venice import errors
from cheaptokens.venice.client import VeniceClient
from cheaptokens.venice.types import ConsumptionLimit

ADMIN = "VENICE_ADMIN_KEY_sandbox_0000"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
MIDNIGHT = datetime(2026, 5, 2, tzinfo=UTC)
BASE = "http://sandbox/api/v1"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"

# The client passes an explicit timeout on every request; Starlette's TestClient ignores it
# and warns (starlette#1108). The timeout itself is asserted in the unit tests.
pytestmark = pytest.mark.filterwarnings("ignore:You should not use the 'timeout' argument")


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(
        accounts=[AccountSpec(admin_key=ADMIN, diem=Decimal("100"), usd=Decimal("0"))], now=NOW
    )


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[TestClient]:
    with TestClient(sandbox.app, base_url="http://sandbox") as client:
        yield client


class Sleeps(list[float]):
    """Records the client's waits; optionally moves the sandbox clock instead of sleeping."""

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        super().__init__()
        self.sandbox = sandbox

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if self.sandbox is not None:
            self.sandbox.clock.advance(seconds)


def make_client(
    http: TestClient, sandbox: Sandbox, key: str = ADMIN, sleeps: Sleeps | None = None
) -> VeniceClient:
    # Starlette's TestClient is built on httpx2, not httpx, but has the same request() API.
    return VeniceClient(
        cast(httpx.Client, http),
        key,
        base_url=BASE,
        sleep=sleeps if sleeps is not None else Sleeps(),
        clock=lambda: sandbox.clock.now().timestamp(),
        jitter=lambda: 1.0,
    )


@pytest.fixture
def venice(http: TestClient, sandbox: Sandbox) -> VeniceClient:
    return make_client(http, sandbox)


def test_key_round_trip(venice: VeniceClient) -> None:
    created = venice.create_key(
        description="order:1",
        consumption_limit=ConsumptionLimit(usd=Decimal("0"), diem=Decimal("12.5")),
        expires_at=MIDNIGHT,
    )
    assert created.api_key.startswith("VENICE_INFERENCE_KEY_")
    assert created.api_key_type == "INFERENCE"
    assert created.expires_at == MIDNIGHT
    assert created.consumption_limits == ConsumptionLimit(usd=Decimal(0), diem=Decimal("12.5"))
    assert created.limit_period == "EPOCH"

    listed = {k.id: k for k in venice.list_keys()}
    assert created.id in listed
    key = listed[created.id]
    assert key.last6 == created.api_key[-6:]
    assert key.description == "order:1"
    assert key.created_at == NOW
    assert key.expires_at == MIDNIGHT
    assert key.consumption_limits.diem == Decimal("12.5")
    assert key.period_usage_diem == Decimal("0")

    fetched = venice.get_key(created.id)
    assert fetched == key

    updated = venice.update_key(
        created.id,
        description="order:1 renamed",
        consumption_limit=ConsumptionLimit(usd=Decimal("0"), diem=Decimal("20")),
        limit_period="LIFETIME",
    )
    assert updated.description == "order:1 renamed"
    assert updated.consumption_limits.diem == Decimal("20")
    assert updated.limit_period == "LIFETIME"
    assert updated.expires_at == MIDNIGHT  # untouched
    assert venice.get_key(created.id).description == "order:1 renamed"

    venice.delete_key(created.id)
    assert created.id not in {k.id for k in venice.list_keys()}
    with pytest.raises(errors.NotFound):
        venice.get_key(created.id)
    with pytest.raises(errors.NotFound):
        venice.delete_key(created.id)


def test_balance(venice: VeniceClient) -> None:
    balance = venice.balance()
    assert balance.can_consume is True
    assert balance.diem == Decimal("100")
    assert balance.diem_epoch_allocation == Decimal("100")
    assert balance.usd == Decimal("0")


def test_rate_limits_for_the_admin_key_and_a_sold_key(venice: VeniceClient) -> None:
    limits = venice.rate_limits()
    assert limits.access_permitted is True
    assert limits.next_epoch_begins == MIDNIGHT
    assert limits.key_expiration is None
    assert limits.models and all(m.limits for m in limits.models)
    assert all(isinstance(v, Decimal) for m in limits.models for v in m.limits.values())

    sold = venice.create_key(
        description="order:2",
        consumption_limit=ConsumptionLimit(usd=Decimal("0"), diem=Decimal("5")),
        expires_at=MIDNIGHT,
    )
    mine = venice.rate_limits(api_key=sold.api_key)
    assert mine.access_permitted is True
    assert mine.key_expiration == MIDNIGHT
    # clamped to the key's limit (docs/venice-facts.md §1.5)
    assert mine.balance_diem == Decimal("5")


def test_inference_key_on_admin_routes_is_permission_denied(
    venice: VeniceClient, http: TestClient, sandbox: Sandbox
) -> None:
    sold = venice.create_key(
        description="order:3", consumption_limit=ConsumptionLimit(diem=Decimal("1"))
    )
    as_buyer = make_client(http, sandbox, key=sold.api_key)
    with pytest.raises(errors.PermissionDenied) as info:
        as_buyer.list_keys()
    assert info.value.status == 401
    assert sold.api_key not in str(info.value) + repr(info.value)
    with pytest.raises(errors.PermissionDenied):
        as_buyer.balance()
    with pytest.raises(errors.PermissionDenied):
        as_buyer.create_key(description="x", consumption_limit=ConsumptionLimit())


def test_unknown_admin_key_is_authentication_failed(http: TestClient, sandbox: Sandbox) -> None:
    stranger = make_client(http, sandbox, key="VENICE_ADMIN_KEY_sandbox_unknown_9999")
    with pytest.raises(errors.AuthenticationFailed) as info:
        stranger.balance()
    assert info.value.status == 401


def test_unknown_ids_are_not_found(venice: VeniceClient) -> None:
    with pytest.raises(errors.NotFound) as get:
        venice.get_key(UNKNOWN_ID)
    with pytest.raises(errors.NotFound) as patch:
        venice.update_key(UNKNOWN_ID, description="x")
    with pytest.raises(errors.NotFound) as delete:
        venice.delete_key(UNKNOWN_ID)
    assert [e.value.status for e in (get, patch, delete)] == [400, 400, 400]


def test_expired_key_is_not_found(venice: VeniceClient, sandbox: Sandbox) -> None:
    key = venice.create_key(
        description="order:4", consumption_limit=ConsumptionLimit(), expires_at=MIDNIGHT
    )
    sandbox.clock.set(MIDNIGHT + timedelta(seconds=1))
    with pytest.raises(errors.NotFound):
        venice.get_key(key.id)
    assert key.id not in {k.id for k in venice.list_keys()}


def test_invalid_create_names_the_field(venice: VeniceClient) -> None:
    with pytest.raises(errors.InvalidRequest) as info:
        venice.create_key(description="x" * 65, consumption_limit=ConsumptionLimit())
    assert info.value.status == 400
    assert "description" in info.value.fields


def create_twenty(venice: VeniceClient) -> None:
    for n in range(20):
        venice.create_key(description=f"bulk:{n}", consumption_limit=ConsumptionLimit())


def test_the_21st_create_in_a_minute_is_rate_limited_after_retries(
    http: TestClient, sandbox: Sandbox
) -> None:
    sleeps = Sleeps()  # no-op: the frozen sandbox clock never moves
    venice = make_client(http, sandbox, sleeps=sleeps)
    create_twenty(venice)
    with pytest.raises(errors.RateLimited) as info:
        venice.create_key(description="bulk:20", consumption_limit=ConsumptionLimit())
    assert info.value.retry_after == 60.0
    assert sleeps == [60.0] * 4  # max_retries, each honouring Venice's reset hint
    assert len([k for k in venice.list_keys() if k.description.startswith("bulk:")]) == 20


def test_the_21st_create_succeeds_once_the_window_has_passed(
    http: TestClient, sandbox: Sandbox
) -> None:
    sleeps = Sleeps(sandbox)  # sleeping moves the sandbox clock
    venice = make_client(http, sandbox, sleeps=sleeps)
    create_twenty(venice)
    key = venice.create_key(description="bulk:20", consumption_limit=ConsumptionLimit())
    assert sleeps == [60.0]
    assert key.id in {k.id for k in venice.list_keys()}


def test_a_lost_create_response_is_outcome_unknown_and_reconcilable(
    venice: VeniceClient, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox.faults.add({"method": "POST", "path": "/api/v1/api_keys", "drop": True})
    with pytest.raises(errors.OutcomeUnknown):
        venice.create_key(description="order:5", consumption_limit=ConsumptionLimit())
    # Venice did act: the caller finds the key by its description, exactly once.
    matches = [k for k in venice.list_keys() if k.description == "order:5"]
    assert len(matches) == 1
    assert ADMIN not in caplog.text and "VENICE_INFERENCE_KEY_" not in caplog.text


def test_injected_503_is_retried(venice: VeniceClient, sandbox: Sandbox) -> None:
    sandbox.faults.add({"method": "GET", "path": "/api/v1/billing/balance", "status": 503})
    assert venice.balance().diem == Decimal("100")


def test_injected_500_on_create_is_not_retried(venice: VeniceClient, sandbox: Sandbox) -> None:
    sandbox.faults.add({"method": "POST", "path": "/api/v1/api_keys", "status": 500})
    with pytest.raises(errors.OutcomeUnknown) as info:
        venice.create_key(description="order:6", consumption_limit=ConsumptionLimit())
    assert info.value.status == 500
    assert [k for k in venice.list_keys() if k.description == "order:6"] == []


def _chat(http: TestClient, secret: str, model: str, content: str = "hello") -> Any:
    return http.post(
        "/api/v1/chat/completions",
        headers={"Authorization": f"Bearer {secret}"},
        json={"model": model, "messages": [{"role": "user", "content": content}]},
    )


def test_model_privacy_set_by_the_client_is_enforced_by_the_sandbox(
    venice: VeniceClient, http: TestClient
) -> None:
    created = venice.create_key(
        description="order:private",
        consumption_limit=ConsumptionLimit(usd=Decimal("0"), diem=Decimal("5")),
        expires_at=MIDNIGHT,
        model_privacy="PRIVATE_TEXT",
    )
    assert created.model_privacy == "PRIVATE_TEXT"
    assert venice.get_key(created.id).model_privacy == "PRIVATE_TEXT"
    listed = {k.id: k for k in venice.list_keys()}
    assert listed[created.id].model_privacy == "PRIVATE_TEXT"

    refused = _chat(http, created.api_key, "openai-gpt-54-pro")
    assert refused.status_code == 403
    assert refused.json()["error"].startswith(
        "This API key is set to 'PRIVATE_TEXT', but openai-gpt-54-pro is an Anonymous model"
    )
    assert _chat(http, created.api_key, "zai-org-glm-5-1").status_code == 200

    updated = venice.update_key(created.id, model_privacy="ALL")
    assert updated.model_privacy == "ALL"
    assert _chat(http, created.api_key, "openai-gpt-54-pro").status_code == 200

    plain = venice.create_key(
        description="order:plain", consumption_limit=ConsumptionLimit(diem=Decimal("1"))
    )
    assert plain.model_privacy == "ALL"  # Venice's default when none is sent


def test_an_overshooting_call_reads_back_as_usage_above_the_cap_and_a_negative_balance(
    http: TestClient, sandbox: Sandbox
) -> None:
    venice = make_client(http, sandbox)
    created = venice.create_key(
        description="order:overshoot",
        consumption_limit=ConsumptionLimit(usd=Decimal("0"), diem=Decimal("1")),
        expires_at=MIDNIGHT,
    )
    prompt = "x " * 399_996  # 400,000 sandbox tokens with the role and framing
    answer = _chat(http, created.api_key, "openai-gpt-54-pro", prompt)
    assert answer.status_code == 200
    cost = Decimal(str(answer.json()["cost"]["diem"]))
    key = venice.get_key(created.id)
    assert key.period_usage_diem == cost.quantize(Decimal("0.0001"))
    assert key.period_usage > Decimal(30) > key.consumption_limits.diem  # type: ignore[operator]
    # Spend the rest of the day's 100 DIEM and go below zero.
    for _ in range(3):
        other = venice.create_key(description="order:more", consumption_limit=ConsumptionLimit())
        assert _chat(http, other.api_key, "openai-gpt-54-pro", prompt).status_code == 200
    balance = venice.balance()
    assert balance.diem is not None and balance.diem < 0
    assert balance.can_consume is False
    assert venice.rate_limits(api_key=created.api_key).access_permitted is False
