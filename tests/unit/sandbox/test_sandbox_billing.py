"""Billing: DIEM then USD, per-key caps, admission 402s, midnight, the error budget."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.testclient import TestClient
from tests.unit.sandbox.sandbox_helpers import ADMIN, ADMIN_KEY, MODEL, bearer, chat

from cheaptokens.sandbox import AccountSpec, Sandbox
from cheaptokens.sandbox.catalogue import find_model

KeyMaker = Callable[..., dict[str, Any]]
INSUFFICIENT = (
    "Insufficient USD or Diem balance to complete request. "
    "Visit https://venice.ai/settings/api to add credits."
)
DIEM_CAP = (
    "API key DIEM spend limit exceeded. Your account may still have DIEM balance, "
    "but this API key has reached its configured DIEM spending limit."
)
USD_CAP = (
    "API key USD spend limit exceeded. Your account may still have USD balance, "
    "but this API key has reached its configured USD spending limit."
)


def balances(client: TestClient) -> dict[str, Any]:
    data: dict[str, Any] = client.get("/api/v1/billing/balance", headers=ADMIN).json()["balances"]
    return data


def test_chat_cost_is_tokens_times_price_charged_to_diem(
    client: TestClient, make_key: KeyMaker
) -> None:
    secret = make_key()["apiKey"]
    body = chat(client, secret).json()
    usage = body["usage"]
    model = find_model(MODEL)
    assert model is not None
    expected = (
        usage["prompt_tokens"] * Decimal("1.54") + usage["completion_tokens"] * Decimal("4.84")
    ) / 10**6
    assert Decimal(str(body["cost"]["diem"])) == expected.quantize(Decimal("1E-8"))
    assert body["cost"]["usd"] == 0
    assert Decimal(str(balances(client)["diem"])) == Decimal(100) - expected.quantize(
        Decimal("1E-8")
    )


def test_balance_headers_are_before_the_request(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    first = chat(client, secret)
    second = chat(client, secret)
    assert first.headers["x-venice-balance-diem"] == "100"
    spent = Decimal(str(first.json()["cost"]["diem"]))
    assert Decimal(second.headers["x-venice-balance-diem"]) == 100 - spent
    assert first.headers["cf-ray"] != second.headers["cf-ray"]
    assert int(first.headers["x-ratelimit-remaining-requests"]) == 99


def test_diem_cap_reached_gives_402_then_resets_at_midnight(
    client: TestClient, make_key: KeyMaker, sandbox: Sandbox
) -> None:
    secret = make_key(consumptionLimit={"diem": 0.0001, "usd": 0})["apiKey"]
    assert chat(client, secret).status_code == 200  # billed after: may overshoot the cap
    blocked = chat(client, secret)
    assert (blocked.status_code, blocked.json()) == (402, {"error": DIEM_CAP})
    sandbox.clock.set(datetime(2026, 3, 11, 0, 0, tzinfo=UTC))
    assert chat(client, secret).status_code == 200


def test_diem_spent_then_usd(make_key: KeyMaker) -> None:
    sb = Sandbox(
        [AccountSpec(ADMIN_KEY, diem=Decimal("0.0001"), usd=Decimal("5"))],
        now=datetime(2026, 3, 10, 12, tzinfo=UTC),
    )
    with TestClient(sb.app) as c:
        secret = c.post(
            "/api/v1/api_keys", headers=ADMIN, json={"apiKeyType": "INFERENCE", "description": "x"}
        ).json()["data"]["apiKey"]
        first = chat(c, secret).json()["cost"]
        assert first["diem"] > 0 and first["usd"] == 0
        second = chat(c, secret).json()["cost"]
        assert second["usd"] > 0 and second["diem"] == 0
        diem = Decimal(str(balances(c)["diem"]))
        assert diem < 0  # billed after the call: the last DIEM request overshoots


def test_zero_usd_cap_never_spends_usd() -> None:
    sb = Sandbox(
        [AccountSpec(ADMIN_KEY, diem=Decimal("0"), usd=Decimal("5"))],
        now=datetime(2026, 3, 10, 12, tzinfo=UTC),
    )
    with TestClient(sb.app) as c:
        body = {"apiKeyType": "INFERENCE", "description": "x", "consumptionLimit": {"usd": 0}}
        secret = c.post("/api/v1/api_keys", headers=ADMIN, json=body).json()["data"]["apiKey"]
        response = chat(c, secret)
        assert (response.status_code, response.json()) == (402, {"error": INSUFFICIENT})
        limited = {**body, "consumptionLimit": {"usd": 0.00001}}
        other = c.post("/api/v1/api_keys", headers=ADMIN, json=limited).json()["data"]["apiKey"]
        assert chat(c, other).status_code == 200
        capped = chat(c, other)
        assert (capped.status_code, capped.json()) == (402, {"error": USD_CAP})
        rate = c.get("/api/v1/api_keys/rate_limits", headers=bearer(other)).json()["data"]
        assert rate["accessPermitted"] is False


def test_empty_account_is_insufficient() -> None:
    sb = Sandbox([AccountSpec(ADMIN_KEY, diem=Decimal("0"), usd=Decimal("0"))])
    with TestClient(sb.app) as c:
        key = c.post(
            "/api/v1/api_keys", headers=ADMIN, json={"apiKeyType": "INFERENCE", "description": "x"}
        ).json()["data"]["apiKey"]
        response = chat(c, key)
        assert (response.status_code, response.json()) == (402, {"error": INSUFFICIENT})


def test_usage_reported_per_period(
    client: TestClient, make_key: KeyMaker, sandbox: Sandbox
) -> None:
    data = make_key(consumptionLimit={"diem": 10}, limitPeriod="MONTH")
    cost = Decimal(str(chat(client, data["apiKey"]).json()["cost"]["diem"]))
    got = client.get(f"/api/v1/api_keys/{data['id']}", headers=ADMIN).json()["data"]
    assert got["currentPeriodUsage"]["diem"] == str(cost.quantize(Decimal("0.0001")))
    assert got["lastUsedAt"] == "2026-03-10T12:00:00.000Z"
    sandbox.clock.set(datetime(2026, 3, 31, 23, 0, tzinfo=UTC))
    assert client.get(f"/api/v1/api_keys/{data['id']}", headers=ADMIN).json()["data"][
        "currentPeriodUsage"
    ]["diem"] == str(cost.quantize(Decimal("0.0001")))
    sandbox.clock.set(datetime(2026, 4, 1, 0, 0, tzinfo=UTC))
    assert (
        client.get(f"/api/v1/api_keys/{data['id']}", headers=ADMIN).json()["data"][
            "currentPeriodUsage"
        ]["diem"]
        == "0.0000"
    )


def test_error_budget_blocks_the_bucket() -> None:
    sb = Sandbox(
        [AccountSpec(ADMIN_KEY, diem=Decimal("10"))],
        now=datetime(2026, 3, 10, 12, tzinfo=UTC),
        failed_request_threshold=3,
    )
    with TestClient(sb.app) as c:
        secret = c.post(
            "/api/v1/api_keys", headers=ADMIN, json={"apiKeyType": "INFERENCE", "description": "x"}
        ).json()["data"]["apiKey"]
        bad = {"model": MODEL, "messages": [], "user": "u1"}
        for _ in range(4):
            assert (
                c.post("/api/v1/chat/completions", json=bad, headers=bearer(secret)).status_code
                == 400
            )
        good = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "user": "u1"}
        blocked = c.post("/api/v1/chat/completions", json=good, headers=bearer(secret))
        assert blocked.status_code == 429
        assert blocked.json()["error"].startswith(
            "Too many failed attempts (> 3) resulting in a non-success"
        )
        other_user = c.post(
            "/api/v1/chat/completions", json={**good, "user": "u2"}, headers=bearer(secret)
        )
        assert other_user.status_code == 200
        sb.clock.advance(30)
        assert (
            c.post("/api/v1/chat/completions", json=good, headers=bearer(secret)).status_code == 200
        )
