"""Time travel (expiry, DIEM refill, EPOCH windows at 00:00 UTC) and fault injection."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient
from tests.unit.sandbox.sandbox_helpers import ADMIN, ADMIN_KEY, START, bearer, chat

from cheaptokens.sandbox import AccountSpec, Sandbox

KeyMaker = Callable[..., dict[str, Any]]
MIDNIGHT = datetime(2026, 3, 11, 0, 0, tzinfo=UTC)


def test_key_expiring_at_midnight(client: TestClient, make_key: KeyMaker, sandbox: Sandbox) -> None:
    secret = make_key(expiresAt="2026-03-11T00:00:00Z")["apiKey"]
    sandbox.clock.set(datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC))
    assert chat(client, secret).status_code == 200
    sandbox.clock.set(MIDNIGHT)
    response = chat(client, secret)
    assert (response.status_code, response.json()) == (401, {"error": "Authentication failed"})


def test_diem_refills_at_midnight_and_unspent_is_lost(
    client: TestClient, make_key: KeyMaker, sandbox: Sandbox
) -> None:
    secret = make_key()["apiKey"]
    assert chat(client, secret).status_code == 200
    sandbox.clock.set(datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC))
    before = client.get("/api/v1/billing/balance", headers=ADMIN).json()["balances"]["diem"]
    assert before < 100
    client.post("/_sandbox/clock", json={"advance_seconds": 1})
    after = client.get("/api/v1/billing/balance", headers=ADMIN).json()
    assert after["balances"]["diem"] == 100 == after["diemEpochAllocation"]


def test_epoch_cap_gets_a_fresh_window(
    client: TestClient, make_key: KeyMaker, sandbox: Sandbox
) -> None:
    data = make_key(consumptionLimit={"diem": 0.0001})
    assert chat(client, data["apiKey"]).status_code == 200
    assert chat(client, data["apiKey"]).status_code == 402
    sandbox.clock.set(datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC))
    assert chat(client, data["apiKey"]).status_code == 402
    sandbox.clock.set(MIDNIGHT)
    got = client.get(f"/api/v1/api_keys/{data['id']}", headers=ADMIN).json()["data"]
    assert got["currentPeriodUsage"]["diem"] == "0.0000"
    assert chat(client, data["apiKey"]).status_code == 200


def test_clock_control_route(client: TestClient, sandbox: Sandbox) -> None:
    assert client.get("/_sandbox/clock").json() == {
        "now": "2026-03-10T12:00:00.000Z",
        "frozen": True,
    }
    moved = client.post("/_sandbox/clock", json={"now": "2026-03-10T23:59:59Z"}).json()
    assert moved["now"] == "2026-03-10T23:59:59.000Z"
    assert sandbox.clock.now() == datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC)
    assert client.post("/_sandbox/clock", json={"now": "2026-03-10T23:59:59"}).status_code == 400
    running = client.post("/_sandbox/clock", json={"frozen": False}).json()
    assert running["frozen"] is False and sandbox.clock.now() >= datetime(
        2026, 3, 10, 23, 59, 59, tzinfo=UTC
    )


def test_status_fault_then_normal(client: TestClient) -> None:
    client.post(
        "/_sandbox/faults",
        json={"status": 503, "count": 2, "method": "GET", "path": "/api/v1/billing/balance"},
    )
    assert client.get("/api/v1/api_keys", headers=ADMIN).status_code == 200  # other path
    for _ in range(2):
        assert client.get("/api/v1/billing/balance", headers=ADMIN).status_code == 503
    assert client.get("/api/v1/billing/balance", headers=ADMIN).status_code == 200
    assert client.get("/_sandbox/faults").json() == {"faults": []}


def test_429_fault_carries_reset_headers_and_skips_the_action(client: TestClient) -> None:
    client.post(
        "/_sandbox/faults",
        json=[{"status": 429, "method": "POST", "path": "/api/v1/api_keys", "retry_after": 7}],
    )
    response = client.post(
        "/api/v1/api_keys", headers=ADMIN, json={"apiKeyType": "INFERENCE", "description": "x"}
    )
    assert response.status_code == 429 and response.json() == {"error": "Rate limit exceeded"}
    assert response.headers["retry-after"] == "7"
    assert (
        int(response.headers["x-ratelimit-reset-requests"]) == int(START.timestamp() * 1000) + 7000
    )
    assert len(client.get("/api/v1/api_keys", headers=ADMIN).json()["data"]) == 1


def test_latency_fault_uses_the_injected_sleep() -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    sb = Sandbox([AccountSpec(ADMIN_KEY, diem=Decimal(1))], now=START, sleep=record)
    sb.faults.add({"latency_ms": 200, "count": None})
    with TestClient(sb.app) as c:
        for _ in range(3):
            assert c.get("/api/v1/billing/balance", headers=ADMIN).status_code == 200
        assert c.get("/_sandbox/clock").status_code == 200  # control routes are never delayed
        assert slept == [0.2, 0.2, 0.2]
        c.delete("/_sandbox/faults")
        c.get("/api/v1/billing/balance", headers=ADMIN)
    assert slept == [0.2, 0.2, 0.2]


def test_drop_performs_the_action_but_loses_the_response(client: TestClient) -> None:
    client.post(
        "/_sandbox/faults", json={"drop": True, "method": "POST", "path": "/api/v1/api_keys"}
    )
    with pytest.raises(httpx.TransportError):
        client.post(
            "/api/v1/api_keys",
            headers=ADMIN,
            json={"apiKeyType": "INFERENCE", "description": "lost"},
        )
    keys = client.get("/api/v1/api_keys", headers=ADMIN).json()["data"]
    assert [k["description"] for k in keys if k["apiKeyType"] == "INFERENCE"] == ["lost"]


def test_bad_fault_rule_rejected(client: TestClient) -> None:
    assert client.post("/_sandbox/faults", json={"status": 200}).status_code == 400
    assert client.post("/_sandbox/faults", json={"count": 1}).status_code == 400
    assert client.post("/_sandbox/faults", json={"status": 500, "colour": "red"}).status_code == 400


def test_accounts_control_route_has_no_secrets(client: TestClient) -> None:
    added = client.post(
        "/_sandbox/accounts",
        json={"admin_key": "VENICE_ADMIN_KEY_sandbox_0001", "diem": 5, "usd": "2.5"},
    )
    assert added.status_code == 201
    listed = client.get("/_sandbox/accounts")
    assert "VENICE_ADMIN_KEY_sandbox_000" not in listed.text
    assert [
        (a["diemEpochAllocation"], a["usd"], a["activeKeys"]) for a in listed.json()["data"]
    ] == [(100, 0, 1), (5, 2.5, 1)]
    assert (
        client.get(
            "/api/v1/billing/balance", headers=bearer("VENICE_ADMIN_KEY_sandbox_0001")
        ).json()["balances"]["usd"]
        == 2.5
    )


def test_unknown_route_is_json_404(client: TestClient) -> None:
    response = client.get("/api/v1/nope", headers=ADMIN)
    assert response.status_code == 404 and response.json() == {"error": "Not found"}
