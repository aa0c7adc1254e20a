"""Unit tests of VeniceClient against httpx.MockTransport: request shapes, parsing, retries."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest

from cheaptokens.venice import errors
from cheaptokens.venice.client import ModelRateLimits, VeniceClient
from cheaptokens.venice.types import ConsumptionLimit

ADMIN = "VENICE_ADMIN_KEY_unit_fake_0000000000"
SECRET = "VENICE_INFERENCE_KEY_unit_fake_secret_abc123"
KEY_ID = "2a7e2a3c-0000-4000-8000-00000000abcd"
BASE = "https://api.venice.ai/api/v1"

Step = httpx.Response | type[httpx.TransportError]


class Script:
    """A MockTransport handler that plays back responses/exceptions and records requests."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, httpx.Response):
            return step
        raise step("simulated", request=request)

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content, parse_float=Decimal)


class Harness:
    def __init__(self, *steps: Step, **kwargs: Any) -> None:
        self.script = Script(*steps)
        self.sleeps: list[float] = []
        kwargs.setdefault("jitter", lambda: 1.0)
        kwargs.setdefault("clock", lambda: 1_700_000_000.0)
        self.client = VeniceClient(
            httpx.Client(transport=httpx.MockTransport(self.script)),
            ADMIN,
            sleep=self.sleeps.append,
            **kwargs,
        )


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def err(status: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": message}, headers=headers)


def key_json(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": KEY_ID,
        "apiKeyType": "INFERENCE",
        "description": "order:42",
        "createdAt": "2026-05-01T10:00:00.000Z",
        "expiresAt": "2026-05-02T00:00:00.000Z",
        "lastUsedAt": None,
        "last6Chars": "abc123",
        "consumptionLimits": {"usd": 0, "diem": 12.5, "vcu": None},
        "limitPeriod": "EPOCH",
        "modelPrivacy": "ALL",
        "usage": {"trailingSevenDays": {"usd": "0.0000", "vcu": "0.0000", "diem": "1.2500"}},
        "currentPeriodUsage": {"usd": "0.0000", "diem": "2.5000"},
    }
    base.update(over)
    return base


def created_json() -> dict[str, Any]:
    return {
        "success": True,
        "data": {
            "id": KEY_ID,
            "apiKey": SECRET,
            "apiKeyType": "INFERENCE",
            "description": "order:42",
            "expiresAt": "2026-05-02T00:00:00.000Z",
            "consumptionLimit": {"usd": 0, "diem": 12.5, "vcu": None},
            "limitPeriod": "EPOCH",
            "modelPrivacy": "ALL",
        },
    }


MIDNIGHT = datetime(2026, 5, 2, tzinfo=UTC)
LIMIT = ConsumptionLimit(usd=Decimal("0"), diem=Decimal("12.50"))


def create(h: Harness) -> Any:
    return h.client.create_key(description="order:42", consumption_limit=LIMIT, expires_at=MIDNIGHT)


# -- request shapes and parsing --------------------------------------------------------------


def test_create_key_sends_the_documented_request() -> None:
    h = Harness(ok(created_json()))
    cet = timezone(timedelta(hours=2))
    h.client.create_key(
        description="order:42",
        consumption_limit=LIMIT,
        expires_at=datetime(2026, 5, 2, 2, 0, 0, 250_000, tzinfo=cet),
    )
    (req,) = h.script.requests
    assert req.method == "POST"
    assert str(req.url) == f"{BASE}/api_keys"
    assert req.headers["authorization"] == f"Bearer {ADMIN}"
    assert req.headers["content-type"] == "application/json"
    assert h.script.body() == {
        "apiKeyType": "INFERENCE",
        "description": "order:42",
        "consumptionLimit": {"usd": Decimal("0"), "diem": Decimal("12.50")},
        "limitPeriod": "EPOCH",
        "expiresAt": "2026-05-02T00:00:00.250Z",
    }
    # Decimal goes out as its exact text, never through float.
    assert b'"diem":12.50' in req.content
    assert req.extensions["timeout"] == {"connect": 5.0, "read": 10.0, "write": 10.0, "pool": 10.0}


def test_create_key_parses_the_created_key() -> None:
    h = Harness(ok(created_json()))
    key = create(h)
    assert key.id == KEY_ID
    assert key.api_key == SECRET
    assert key.api_key_type == "INFERENCE"
    assert key.expires_at == MIDNIGHT
    assert key.consumption_limits == ConsumptionLimit(usd=Decimal("0"), diem=Decimal("12.5"))
    assert isinstance(key.consumption_limits.diem, Decimal)
    assert key.limit_period == "EPOCH"


def test_create_key_without_expiry_or_caps_sends_nulls_and_no_expires_at() -> None:
    h = Harness(ok(created_json()))
    h.client.create_key(description="admin", consumption_limit=ConsumptionLimit(), key_type="ADMIN")
    body = h.script.body()
    assert "expiresAt" not in body
    assert body["consumptionLimit"] == {"usd": None, "diem": None}
    assert body["apiKeyType"] == "ADMIN"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"expires_at": datetime(2026, 5, 2)},  # naive
        {"consumption_limit": ConsumptionLimit(diem=Decimal("-1"))},
        {"consumption_limit": ConsumptionLimit(usd=Decimal("10000000000"))},
        {"limit_period": "WEEK"},
    ],
)
def test_create_key_rejects_bad_arguments_without_calling_venice(kwargs: dict[str, Any]) -> None:
    h = Harness()
    args: dict[str, Any] = {"description": "x", "consumption_limit": LIMIT, **kwargs}
    with pytest.raises(ValueError):
        h.client.create_key(**args)
    assert h.script.requests == []


def test_list_keys_parses_plural_limits_usage_strings_and_nulls() -> None:
    bare = key_json(id="k2", expiresAt=None, lastUsedAt="2026-05-01T11:00:00Z")
    del bare["currentPeriodUsage"]
    bare["consumptionLimits"] = {"usd": None, "diem": None, "vcu": None}
    h = Harness(ok({"object": "list", "data": [key_json(), bare]}))
    first, second = h.client.list_keys()
    (req,) = h.script.requests
    assert (req.method, str(req.url)) == ("GET", f"{BASE}/api_keys")
    assert req.headers["authorization"] == f"Bearer {ADMIN}"
    assert first.created_at == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert first.expires_at == MIDNIGHT
    assert first.last_used_at is None
    assert first.last6 == "abc123"
    assert first.consumption_limits == ConsumptionLimit(usd=Decimal(0), diem=Decimal("12.5"))
    assert first.period_usage_diem == Decimal("2.5000")
    assert str(first.period_usage_diem) == "2.5000"
    assert first.period_usage_usd == Decimal("0")
    assert second.expires_at is None
    assert second.last_used_at == datetime(2026, 5, 1, 11, tzinfo=UTC)
    assert second.consumption_limits == ConsumptionLimit()
    assert second.period_usage_usd is None and second.period_usage_diem is None


def test_get_key_uses_the_id_path() -> None:
    h = Harness(ok({"data": key_json()}))
    key = h.client.get_key(KEY_ID)
    (req,) = h.script.requests
    assert (req.method, str(req.url)) == ("GET", f"{BASE}/api_keys/{KEY_ID}")
    assert key.id == KEY_ID and key.description == "order:42"


def test_get_key_escapes_the_id() -> None:
    h = Harness(ok({"data": key_json()}))
    h.client.get_key("a/b?c")
    assert h.script.requests[0].url.raw_path == b"/api/v1/api_keys/a%2Fb%3Fc"


def test_update_key_patches_only_the_given_fields() -> None:
    patched = key_json(description="renamed")
    del patched["usage"], patched["currentPeriodUsage"]
    h = Harness(ok({"success": True, "data": patched}), ok({"success": True, "data": patched}))
    key = h.client.update_key(KEY_ID, description="renamed")
    req = h.script.requests[0]
    assert (req.method, str(req.url)) == ("PATCH", f"{BASE}/api_keys")
    assert h.script.body() == {"id": KEY_ID, "description": "renamed"}
    assert key.description == "renamed" and key.period_usage_diem is None

    h.client.update_key(
        KEY_ID,
        consumption_limit=ConsumptionLimit(diem=Decimal("3")),
        limit_period="LIFETIME",
        expires_at=MIDNIGHT,
    )
    assert h.script.body() == {
        "id": KEY_ID,
        "consumptionLimit": {"usd": None, "diem": Decimal("3")},
        "limitPeriod": "LIFETIME",
        "expiresAt": "2026-05-02T00:00:00.000Z",
    }


def test_delete_key_uses_the_query_parameter() -> None:
    h = Harness(ok({"success": True}))
    h.client.delete_key(KEY_ID)
    (req,) = h.script.requests
    assert req.method == "DELETE"
    assert req.url.path == "/api/v1/api_keys"
    assert req.url.params["id"] == KEY_ID
    assert req.content == b""


def test_delete_of_an_unknown_key_is_not_found() -> None:
    h = Harness(err(400, "API key could not be found"))
    with pytest.raises(errors.NotFound) as info:
        h.client.delete_key(KEY_ID)
    assert info.value.status == 400
    assert info.value.path == "/api_keys"
    assert len(h.script.requests) == 1


def rate_limits_json() -> dict[str, Any]:
    return {
        "data": {
            "accessPermitted": True,
            "apiTier": {"id": "paid", "isCharged": True},
            "balances": {"USD": 50.23, "DIEM": 100.023},
            "keyExpiration": "2025-06-01T00:00:00Z",
            "nextEpochBegins": "2025-05-07T00:00:00.000Z",
            "rateLimits": [
                {
                    "apiModelId": "zai-org-glm-5-1",
                    "rateLimits": [{"type": "RPM", "amount": 100}, {"type": "TPM", "amount": 2e6}],
                },
                {"apiModelId": "some-video-model", "rateLimits": []},
            ],
        }
    }


def test_rate_limits_parses_the_calling_keys_view() -> None:
    h = Harness(ok(rate_limits_json()))
    limits = h.client.rate_limits()
    (req,) = h.script.requests
    assert (req.method, str(req.url)) == ("GET", f"{BASE}/api_keys/rate_limits")
    assert limits.access_permitted is True
    assert (limits.api_tier, limits.is_charged) == ("paid", True)
    assert limits.balance_usd == Decimal("50.23") and limits.balance_diem == Decimal("100.023")
    assert limits.key_expiration == datetime(2025, 6, 1, tzinfo=UTC)
    assert limits.next_epoch_begins == datetime(2025, 5, 7, tzinfo=UTC)
    assert limits.models[0] == ModelRateLimits(
        "zai-org-glm-5-1", {"RPM": Decimal(100), "TPM": Decimal("2E+6")}
    )
    assert limits.models[1].limits == {}


def test_rate_limits_can_ask_about_another_key() -> None:
    h = Harness(ok(rate_limits_json()))
    h.client.rate_limits(api_key=SECRET)
    assert h.script.requests[0].headers["authorization"] == f"Bearer {SECRET}"


def test_balance_parses_numbers_exactly() -> None:
    body = {
        "canConsume": True,
        "consumptionCurrency": "DIEM",
        "balances": {"diem": 90.1, "usd": 25},
        "diemEpochAllocation": 100,
    }
    h = Harness(ok(body))
    balance = h.client.balance()
    (req,) = h.script.requests
    assert (req.method, str(req.url)) == ("GET", f"{BASE}/billing/balance")
    assert balance.can_consume is True
    assert balance.diem == Decimal("90.1") and isinstance(balance.diem, Decimal)
    assert balance.usd == Decimal(25)
    assert balance.diem_epoch_allocation == Decimal(100)


def test_balance_with_null_balances() -> None:
    body = {
        "canConsume": False,
        "consumptionCurrency": None,
        "balances": {"diem": None, "usd": None},
        "diemEpochAllocation": 0,
    }
    balance = Harness(ok(body)).client.balance()
    assert (balance.diem, balance.usd, balance.can_consume) == (None, None, False)


def test_base_url_is_configurable() -> None:
    h = Harness(ok({"object": "list", "data": []}), base_url="http://sandbox/api/v1/")
    assert h.client.list_keys() == []
    assert str(h.script.requests[0].url) == "http://sandbox/api/v1/api_keys"


@pytest.mark.parametrize(
    "response",
    [
        ok({"object": "list", "data": {"not": "a list"}}),
        ok({"object": "list", "data": [{"id": "x"}]}),
        httpx.Response(200, content=b"<html>"),
    ],
)
def test_malformed_success_bodies_raise_unexpected_response(response: httpx.Response) -> None:
    with pytest.raises(errors.UnexpectedResponse):
        Harness(response).client.list_keys()


# -- retries and backoff ---------------------------------------------------------------------


def test_5xx_is_retried_with_exponential_backoff() -> None:
    h = Harness(err(503, "busy"), err(500, "oops"), ok({"object": "list", "data": []}))
    assert h.client.list_keys() == []
    assert h.sleeps == [0.5, 1.0]
    assert len(h.script.requests) == 3


def test_jitter_scales_each_delay_between_half_and_full() -> None:
    h = Harness(err(503, "busy"), err(503, "busy"), ok({"data": key_json()}), jitter=lambda: 0.0)
    h.client.get_key(KEY_ID)
    assert h.sleeps == [0.25, 0.5]


def test_backoff_is_capped_and_exhaustion_raises_unavailable() -> None:
    h = Harness(*[err(500, "unknown error")] * 7, max_retries=6)
    with pytest.raises(errors.Unavailable) as info:
        h.client.balance()
    assert h.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert len(h.script.requests) == 7
    assert info.value.status == 500 and info.value.path == "/billing/balance"
    assert not isinstance(info.value, errors.OutcomeUnknown)


def test_retry_after_is_honoured_when_longer_than_the_backoff() -> None:
    h = Harness(
        err(429, "Rate limit exceeded", {"Retry-After": "3"}),
        err(429, "Rate limit exceeded", {"Retry-After": "0.1"}),
        ok({"object": "list", "data": []}),
    )
    h.client.list_keys()
    assert h.sleeps == [3.0, 1.0]  # the second hint is shorter than the backoff


def test_reset_header_in_unix_ms_is_honoured() -> None:
    now = 1_700_000_000.0
    reset_ms = str(int((now + 5.5) * 1000))
    h = Harness(
        err(429, "Rate limit exceeded", {"x-ratelimit-reset-requests": reset_ms}),
        ok({"object": "list", "data": []}),
        clock=lambda: now,
    )
    h.client.list_keys()
    assert h.sleeps == [5.5]


def test_error_budget_reset_header_is_honoured() -> None:
    now = 1_700_000_000.0
    resets = {"x-ratelimit-resets": str(int(now + 30) * 1000)}
    h = Harness(
        err(429, "Too many failed attempts (> 50)", resets),
        ok({"object": "list", "data": []}),
        clock=lambda: now,
    )
    h.client.list_keys()
    assert h.sleeps == [30.0]


def test_retry_after_wins_over_absolute_reset_headers() -> None:
    # A reset time far in our future (clock skew) must not override the relative hint.
    now = 1_700_000_000.0
    headers = {"Retry-After": "2", "x-ratelimit-reset-requests": str(int(now + 3600) * 1000)}
    h = Harness(err(429, "Rate limit exceeded", headers), ok({"data": []}), clock=lambda: now)
    h.client.list_keys()
    assert h.sleeps == [2.0]


def test_retry_after_http_date_is_understood() -> None:
    now = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    h = Harness(
        err(503, "busy", {"Retry-After": "Fri, 01 May 2026 12:00:04 GMT"}),
        ok({"object": "list", "data": []}),
        clock=now.timestamp,
    )
    h.client.list_keys()
    assert h.sleeps == [4.0]


def test_a_hint_longer_than_max_retry_after_stops_at_once() -> None:
    h = Harness(err(429, "Rate limit exceeded", {"Retry-After": "120"}), max_retry_after=60.0)
    with pytest.raises(errors.RateLimited) as info:
        h.client.list_keys()
    assert info.value.retry_after == 120.0
    assert h.sleeps == []
    assert len(h.script.requests) == 1


def test_429_exhaustion_raises_rate_limited_with_the_last_hint() -> None:
    h = Harness(*[err(429, "Rate limit exceeded", {"Retry-After": "2"})] * 5)
    with pytest.raises(errors.RateLimited) as info:
        h.client.list_keys()
    assert len(h.script.requests) == 5  # 1 + max_retries (4)
    assert h.sleeps == [2.0, 2.0, 2.0, 4.0]
    assert info.value.retry_after == 2.0
    assert info.value.status == 429


def test_429_without_a_hint_has_no_retry_after() -> None:
    h = Harness(*[err(429, "Rate limit exceeded")] * 2, max_retries=1)
    with pytest.raises(errors.RateLimited) as info:
        h.client.list_keys()
    assert info.value.retry_after is None


@pytest.mark.parametrize("exc", [httpx.ReadTimeout, httpx.ConnectError, httpx.RemoteProtocolError])
def test_reads_retry_transport_errors(exc: type[httpx.TransportError]) -> None:
    h = Harness(exc, ok({"object": "list", "data": []}))
    assert h.client.list_keys() == []
    assert h.sleeps == [0.5]


def test_transport_errors_exhausted_raise_unavailable_without_status() -> None:
    h = Harness(*[httpx.ConnectTimeout] * 3, max_retries=2)
    with pytest.raises(errors.Unavailable) as info:
        h.client.balance()
    assert info.value.status is None
    assert "ConnectTimeout" in str(info.value)
    assert isinstance(info.value.__cause__, httpx.ConnectTimeout)


def test_zero_retries_means_one_attempt() -> None:
    h = Harness(err(503, "busy"), max_retries=0)
    with pytest.raises(errors.Unavailable):
        h.client.balance()
    assert len(h.script.requests) == 1 and h.sleeps == []


# -- key creation is not idempotent ----------------------------------------------------------


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.RemoteProtocolError]
)
def test_create_is_not_retried_when_the_request_may_have_arrived(
    exc: type[httpx.TransportError],
) -> None:
    h = Harness(exc, ok(created_json()))
    with pytest.raises(errors.OutcomeUnknown) as info:
        create(h)
    assert isinstance(info.value, errors.Unavailable)
    assert len(h.script.requests) == 1
    assert h.sleeps == []


@pytest.mark.parametrize("status", [500, 502, 504])
def test_create_is_not_retried_after_an_ambiguous_5xx(status: int) -> None:
    h = Harness(err(status, "An unknown error occurred"), ok(created_json()))
    with pytest.raises(errors.OutcomeUnknown) as info:
        create(h)
    assert info.value.status == status
    assert len(h.script.requests) == 1


@pytest.mark.parametrize(
    "first",
    [httpx.ConnectError, httpx.ConnectTimeout, err(429, "Rate limit exceeded"), err(503, "busy")],
)
def test_create_is_retried_when_venice_provably_did_not_act(first: Step) -> None:
    h = Harness(first, ok(created_json()))
    assert create(h).api_key == SECRET
    assert len(h.script.requests) == 2
    assert h.script.body(0) == h.script.body(1)


def test_create_with_an_unreadable_success_body_is_outcome_unknown() -> None:
    h = Harness(httpx.Response(200, content=b'{"success":true,"data":{"id":'))
    with pytest.raises(errors.OutcomeUnknown):
        create(h)
    h = Harness(ok({"success": True, "data": {"id": KEY_ID, "apiKey": SECRET}}))
    with pytest.raises(errors.OutcomeUnknown) as info:
        create(h)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


def test_create_429_exhaustion_raises_rate_limited() -> None:
    h = Harness(*[err(429, "Rate limit exceeded")] * 5)
    with pytest.raises(errors.RateLimited):
        create(h)
    assert len(h.script.requests) == 5


def test_delete_after_an_unanswered_attempt_accepts_not_found() -> None:
    h = Harness(httpx.ReadTimeout, err(400, "API key could not be found"))
    h.client.delete_key(KEY_ID)  # no NotFound: the first attempt deleted it
    assert len(h.script.requests) == 2


def test_delete_after_a_connect_error_still_reports_not_found() -> None:
    h = Harness(httpx.ConnectError, err(400, "API key could not be found"))
    with pytest.raises(errors.NotFound):
        h.client.delete_key(KEY_ID)


# -- error mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (401, "Authentication failed", errors.AuthenticationFailed),
        (401, "Admin API key required", errors.PermissionDenied),
        (403, "Unauthorized access", errors.PermissionDenied),
        (
            402,
            "API key DIEM spend limit exceeded. Your account may still have DIEM balance, but "
            "this API key has reached its configured DIEM spending limit.",
            errors.SpendLimitExceeded,
        ),
        (402, "API key USD spend limit exceeded.", errors.SpendLimitExceeded),
        (
            402,
            "Insufficient USD or Diem balance to complete request. Visit "
            "https://venice.ai/settings/api to add credits.",
            errors.InsufficientBalance,
        ),
        (400, "API key not found", errors.NotFound),
        (400, "API key not found or expired", errors.NotFound),
        (400, "API key could not be found", errors.NotFound),
        (404, "Not Found", errors.NotFound),
        (400, "Maximum of 500 active API keys reached", errors.InvalidRequest),
        (409, "conflict", errors.InvalidRequest),
        (402, "Payment required", errors.InvalidRequest),
    ],
)
def test_error_mapping(status: int, message: str, expected: type[errors.VeniceError]) -> None:
    h = Harness(err(status, message))
    with pytest.raises(errors.VeniceError) as info:
        h.client.get_key(KEY_ID)
    assert type(info.value) is expected
    assert info.value.status == status
    assert info.value.message == message
    assert info.value.method == "GET"
    assert info.value.path == f"/api_keys/{KEY_ID}"
    assert len(h.script.requests) == 1  # 4xx are final


def test_detailed_error_names_the_rejected_fields() -> None:
    body = {
        "error": "Invalid request",
        "details": {"_errors": [], "description": {"_errors": ["too long"]}, "expiresAt": {}},
        "issues": [{"path": ["description"], "message": "too long"}],
    }
    h = Harness(ok(body, status=400))
    with pytest.raises(errors.InvalidRequest) as info:
        create(h)
    assert info.value.fields == ("description", "expiresAt")
    assert "description" in str(info.value)


def test_openai_style_and_non_json_error_bodies() -> None:
    h = Harness(ok({"error": {"message": "bad thing", "type": "invalid_request_error"}}, 400))
    with pytest.raises(errors.InvalidRequest) as info:
        h.client.list_keys()
    assert info.value.message == "bad thing"
    h = Harness(httpx.Response(418, content=b"<html>teapot</html>"))
    with pytest.raises(errors.InvalidRequest) as info:
        h.client.list_keys()
    assert info.value.message == "I'm a teapot"


# -- secrets ---------------------------------------------------------------------------------


def test_secrets_never_reach_exceptions(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"bad key {ADMIN} and {SECRET}"
    h = Harness(err(401, echo))
    with pytest.raises(errors.AuthenticationFailed) as info:
        h.client.rate_limits(api_key="VENICE_INFERENCE_KEY_other_fake_999999")
    text = str(info.value) + repr(info.value) + info.value.message
    assert ADMIN not in text and SECRET not in text
    assert "[redacted]" in info.value.message


def test_secrets_never_reach_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    h = Harness(
        httpx.ConnectError,
        err(429, "Rate limit exceeded", {"Retry-After": "1"}),
        ok(created_json()),
    )
    key = create(h)
    assert key.api_key == SECRET
    h2 = Harness(httpx.ReadTimeout)
    with pytest.raises(errors.OutcomeUnknown):
        create(h2)
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert "POST /api_keys" in caplog.text  # the log is not empty: method and path are there
    assert ADMIN not in logged and SECRET not in logged
    assert SECRET not in repr(key) and ADMIN not in repr(h.client)


def test_constructor_requires_an_admin_key() -> None:
    with pytest.raises(ValueError):
        VeniceClient(httpx.Client(), "")


# -- modelPrivacy (docs/venice-facts.md §1.2, §1.4, §4.3) ------------------------------------


@pytest.mark.parametrize("privacy", ["ALL", "PRIVATE_TEXT", "PRIVATE_ONLY"])
def test_create_key_sends_model_privacy_only_when_given(privacy: str) -> None:
    answer = created_json()
    answer["data"]["modelPrivacy"] = privacy
    h = Harness(ok(created_json()), ok(answer))
    create(h)
    assert "modelPrivacy" not in h.script.body()
    key = h.client.create_key(
        description="order:42",
        consumption_limit=LIMIT,
        model_privacy=privacy,  # type: ignore[arg-type]
    )
    assert h.script.body()["modelPrivacy"] == privacy
    assert key.model_privacy == privacy


def test_update_key_sends_model_privacy_and_parses_it() -> None:
    patched = key_json(modelPrivacy="PRIVATE_ONLY")
    del patched["usage"], patched["currentPeriodUsage"]
    h = Harness(ok({"success": True, "data": patched}))
    key = h.client.update_key(KEY_ID, model_privacy="PRIVATE_ONLY")
    assert h.script.body() == {"id": KEY_ID, "modelPrivacy": "PRIVATE_ONLY"}
    assert key.model_privacy == "PRIVATE_ONLY"


def test_listed_keys_carry_model_privacy_or_none() -> None:
    bare = key_json(id="k2")
    del bare["modelPrivacy"]
    h = Harness(ok({"object": "list", "data": [key_json(modelPrivacy="PRIVATE_TEXT"), bare]}))
    first, second = h.client.list_keys()
    assert (first.model_privacy, second.model_privacy) == ("PRIVATE_TEXT", None)


@pytest.mark.parametrize("bad", ["PRIVATE", "all", ""])
def test_unknown_model_privacy_is_refused_before_calling_venice(bad: str) -> None:
    h = Harness()
    with pytest.raises(ValueError, match="model privacy"):
        h.client.create_key(
            description="x",
            consumption_limit=LIMIT,
            model_privacy=bad,  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="model privacy"):
        h.client.update_key(KEY_ID, model_privacy=bad)  # type: ignore[arg-type]
    assert h.script.requests == []


def test_overshot_period_usage_is_parsed_as_venice_reports_it() -> None:
    """Billing after the call lets a key end above its cap (docs/venice-facts.md §6)."""
    h = Harness(ok({"data": key_json(currentPeriodUsage={"usd": "0.0000", "diem": "30.0123"})}))
    key = h.client.get_key(KEY_ID)
    assert key.period_usage_diem == Decimal("30.0123")
    assert key.consumption_limits.diem is not None
    assert key.period_usage > key.consumption_limits.diem


def test_negative_balance_is_parsed_exactly() -> None:
    h = Harness(
        ok(
            {
                "canConsume": False,
                "consumptionCurrency": None,
                "balances": {"diem": -20.00123, "usd": 0},
                "diemEpochAllocation": 10,
            }
        )
    )
    balance = h.client.balance()
    assert balance.diem == Decimal("-20.00123") and balance.can_consume is False
