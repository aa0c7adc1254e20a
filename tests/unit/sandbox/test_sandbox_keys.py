"""Key management routes: shapes, strictness, permissions and account limits."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests.unit.sandbox.sandbox_helpers import ADMIN, ADMIN_KEY, bearer

from cheaptokens.sandbox import Sandbox

KeyMaker = Callable[..., dict[str, Any]]


def test_create_returns_secret_once_with_singular_limit(
    client: TestClient, make_key: KeyMaker
) -> None:
    data = make_key(consumptionLimit={"diem": 2.5}, expiresAt="2026-03-11")
    assert re.fullmatch(r"VENICE_INFERENCE_KEY_[A-Za-z0-9]+", data["apiKey"])
    uuid.UUID(data["id"])
    assert data["consumptionLimit"] == {"usd": None, "diem": 2.5, "vcu": None}
    assert data["expiresAt"] == "2026-03-11T00:00:00.000Z"
    assert (data["limitPeriod"], data["modelPrivacy"]) == ("EPOCH", "ALL")

    listed = client.get(f"/api/v1/api_keys/{data['id']}", headers=ADMIN).json()["data"]
    assert "apiKey" not in listed and "consumptionLimit" not in listed
    assert listed["consumptionLimits"] == {"usd": None, "diem": 2.5, "vcu": None}
    assert listed["last6Chars"] == data["apiKey"][-6:]
    assert listed["currentPeriodUsage"] == {"usd": "0.0000", "diem": "0.0000"}
    assert listed["usage"]["trailingSevenDays"] == {
        "usd": "0.0000",
        "vcu": "0.0000",
        "diem": "0.0000",
    }


def test_admin_key_secret_prefix(make_key: KeyMaker) -> None:
    assert make_key(apiKeyType="ADMIN")["apiKey"].startswith("VENICE_ADMIN_KEY_")


def test_current_period_usage_only_when_limited(client: TestClient, make_key: KeyMaker) -> None:
    data = make_key()
    listed = client.get(f"/api/v1/api_keys/{data['id']}", headers=ADMIN).json()["data"]
    assert "currentPeriodUsage" not in listed


def test_list_is_newest_first(client: TestClient, make_key: KeyMaker, sandbox: Sandbox) -> None:
    first = make_key(description="first")
    sandbox.clock.advance(1)
    second = make_key(description="second")
    ids = [k["id"] for k in client.get("/api/v1/api_keys", headers=ADMIN).json()["data"]]
    assert ids.index(second["id"]) < ids.index(first["id"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"apiKeyType": "INFERENCE", "description": "x", "bogus": 1}, None),
        ({"apiKeyType": "INFERENCE", "description": "x" * 65}, "description"),
        ({"apiKeyType": "INFERENCE"}, "description"),
        ({"apiKeyType": "OWNER", "description": "x"}, "apiKeyType"),
        (
            {"apiKeyType": "INFERENCE", "description": "x", "expiresAt": "2026-03-11T00:00Z"},
            "expiresAt",
        ),
        ({"apiKeyType": "INFERENCE", "description": "x", "expiresAt": None}, "expiresAt"),
        (
            {"apiKeyType": "INFERENCE", "description": "x", "consumptionLimit": {"usd": -1}},
            "consumptionLimit",
        ),
        (
            {"apiKeyType": "INFERENCE", "description": "x", "consumptionLimit": {"usd": True}},
            "consumptionLimit",
        ),
        ({"apiKeyType": "INFERENCE", "description": "x", "limitPeriod": "WEEK"}, "limitPeriod"),
    ],
)
def test_create_rejects_bad_bodies(
    client: TestClient, body: dict[str, Any], field: str | None
) -> None:
    response = client.post("/api/v1/api_keys", json=body, headers=ADMIN)
    assert response.status_code == 400
    payload = response.json()
    assert payload["issues"] and "_errors" in payload["details"]
    if field is not None:
        assert field in payload["details"]


@pytest.mark.parametrize(
    ("expires", "echo"),
    [
        ("", None),
        ("2026-04-01", "2026-04-01T00:00:00.000Z"),
        ("2026-04-01T10:20:30Z", "2026-04-01T10:20:30.000Z"),
        ("2026-04-01T10:20:30.250Z", "2026-04-01T10:20:30.250Z"),
    ],
)
def test_expires_at_forms(make_key: KeyMaker, expires: str, echo: str | None) -> None:
    assert make_key(expiresAt=expires)["expiresAt"] == echo


def test_description_of_64_and_empty_accepted(make_key: KeyMaker) -> None:
    assert make_key(description="x" * 64)["description"] == "x" * 64
    assert make_key(description="")["description"] == ""


def test_inference_key_cannot_manage_keys(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    for method, path in [
        ("GET", "/api/v1/api_keys"),
        ("POST", "/api/v1/api_keys"),
        ("GET", "/api/v1/billing/balance"),
    ]:
        response = client.request(
            method,
            path,
            headers=bearer(secret),
            json={"apiKeyType": "INFERENCE", "description": "x"},
        )
        assert (response.status_code, response.json()) == (401, {"error": "Admin API key required"})
    assert client.get("/api/v1/api_keys/rate_limits", headers=bearer(secret)).status_code == 200


def test_missing_and_bad_credentials(client: TestClient) -> None:
    no_auth = client.get("/api/v1/api_keys")
    assert no_auth.status_code == 402 and "x402Version" in no_auth.json()
    bad = client.get("/api/v1/api_keys", headers=bearer("VENICE_ADMIN_KEY_not_a_real_one"))
    assert (bad.status_code, bad.json()) == (401, {"error": "Authentication failed"})


def test_revoked_key_fails_auth(client: TestClient, make_key: KeyMaker) -> None:
    data = make_key()
    assert client.delete(f"/api/v1/api_keys?id={data['id']}", headers=ADMIN).json() == {
        "success": True
    }
    response = client.get("/api/v1/api_keys/rate_limits", headers=bearer(data["apiKey"]))
    assert (response.status_code, response.json()) == (401, {"error": "Authentication failed"})
    again = client.delete(f"/api/v1/api_keys?id={data['id']}", headers=ADMIN)
    assert (again.status_code, again.json()["error"]) == (400, "API key could not be found")


def test_delete_with_json_body(client: TestClient, make_key: KeyMaker) -> None:
    data = make_key()
    response = client.request("DELETE", "/api/v1/api_keys", json={"id": data["id"]}, headers=ADMIN)
    assert response.json() == {"success": True}


def test_patch_changes_only_sent_fields(client: TestClient, make_key: KeyMaker) -> None:
    data = make_key(consumptionLimit={"diem": 5, "usd": 0}, expiresAt="2026-04-01")
    response = client.patch(
        "/api/v1/api_keys",
        headers=ADMIN,
        json={"id": data["id"], "consumptionLimit": {"diem": 7}, "expiresAt": None},
    )
    assert response.status_code == 200
    patched = response.json()
    assert patched["success"] is True
    assert patched["data"]["consumptionLimits"] == {"usd": 0, "diem": 7, "vcu": None}
    assert patched["data"]["expiresAt"] is None and patched["data"]["description"] == "test key"
    assert "usage" not in patched["data"]


def test_patch_rejects_type_change_and_unknown_id(client: TestClient, make_key: KeyMaker) -> None:
    data = make_key()
    typed = client.patch(
        "/api/v1/api_keys", headers=ADMIN, json={"id": data["id"], "apiKeyType": "ADMIN"}
    )
    assert typed.status_code == 400 and typed.json()["issues"][0]["code"] == "unrecognized_keys"
    unknown = client.patch("/api/v1/api_keys", headers=ADMIN, json={"id": str(uuid.uuid4())})
    assert (unknown.status_code, unknown.json()) == (400, {"error": "API key not found or expired"})


def test_expired_keys_hidden(client: TestClient, make_key: KeyMaker, sandbox: Sandbox) -> None:
    data = make_key(expiresAt="2026-03-10T12:00:30Z")
    sandbox.clock.advance(30)
    ids = [k["id"] for k in client.get("/api/v1/api_keys", headers=ADMIN).json()["data"]]
    assert data["id"] not in ids
    got = client.get(f"/api/v1/api_keys/{data['id']}", headers=ADMIN)
    assert (got.status_code, got.json()) == (400, {"error": "API key not found"})
    patched = client.patch(
        "/api/v1/api_keys", headers=ADMIN, json={"id": data["id"], "description": "y"}
    )
    assert patched.status_code == 400
    # Deleting an expired key still works (the shop cleans up after expiry).
    assert client.delete(f"/api/v1/api_keys?id={data['id']}", headers=ADMIN).status_code == 200


def test_twenty_first_creation_in_a_minute_is_429(
    client: TestClient, make_key: KeyMaker, sandbox: Sandbox
) -> None:
    for _ in range(20):
        make_key()
    response = client.post(
        "/api/v1/api_keys", headers=ADMIN, json={"apiKeyType": "INFERENCE", "description": "x"}
    )
    assert (response.status_code, response.json()) == (429, {"error": "Rate limit exceeded"})
    assert (
        int(response.headers["x-ratelimit-reset-requests"]) > sandbox.clock.now().timestamp() * 1000
    )
    sandbox.clock.advance(60)
    make_key()


def test_five_hundred_first_active_key_is_400_and_expired_do_not_count(
    client: TestClient, make_key: KeyMaker, sandbox: Sandbox
) -> None:
    # The account's own ADMIN key is key number 1, as on Venice.
    short_lived: list[str] = []
    for n in range(499):
        if n and n % 20 == 0:
            sandbox.clock.advance(60)
        expiry = {"expiresAt": "2026-03-11"} if n < 5 else {}
        data = make_key(**expiry)
        if n < 5:
            short_lived.append(data["id"])
    sandbox.clock.advance(60)
    response = client.post(
        "/api/v1/api_keys",
        headers=ADMIN,
        json={"apiKeyType": "INFERENCE", "description": "one too many"},
    )
    assert response.status_code == 400
    assert "500" in response.json()["error"]
    sandbox.clock.set(sandbox.clock.now().replace(day=11, hour=0, minute=0))
    assert len(client.get("/api/v1/api_keys", headers=ADMIN).json()["data"]) == 495
    for _ in range(5):
        make_key()
    assert (
        client.post(
            "/api/v1/api_keys", headers=ADMIN, json={"apiKeyType": "INFERENCE", "description": "x"}
        ).status_code
        == 400
    )


def test_balance_and_rate_limits_shapes(client: TestClient, make_key: KeyMaker) -> None:
    assert client.get("/api/v1/billing/balance", headers=ADMIN).json() == {
        "canConsume": True,
        "consumptionCurrency": "DIEM",
        "balances": {"diem": 100, "usd": 0},
        "diemEpochAllocation": 100,
    }
    secret = make_key(consumptionLimit={"diem": 3}, expiresAt="2026-03-11")["apiKey"]
    data = client.get("/api/v1/api_keys/rate_limits", headers=bearer(secret)).json()["data"]
    assert data["accessPermitted"] is True
    assert data["balances"] == {"USD": 0, "DIEM": 3}
    assert data["keyExpiration"] == "2026-03-11T00:00:00.000Z"
    assert data["nextEpochBegins"] == "2026-03-11T00:00:00.000Z"
    assert {"type": "RPM", "amount": 100} in next(
        r["rateLimits"] for r in data["rateLimits"] if r["apiModelId"] == "zai-org-glm-5-1"
    )


def test_admin_key_listed_without_secret(client: TestClient) -> None:
    keys = client.get("/api/v1/api_keys", headers=ADMIN).json()["data"]
    assert [k["last6Chars"] for k in keys] == [ADMIN_KEY[-6:]]
    assert ADMIN_KEY not in client.get("/api/v1/api_keys", headers=ADMIN).text
