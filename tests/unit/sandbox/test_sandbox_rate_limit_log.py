"""``GET /api_keys/rate_limits/log`` (issue #15, item 7): the account's last 50 breaches,
newest first, from the sandbox's own 429s (docs/venice-facts.md §1.5; SK-KEYS)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.testclient import TestClient
from tests.unit.sandbox.sandbox_helpers import ADMIN, ADMIN_KEY, MODEL, START, bearer

from cheaptokens.sandbox import AccountSpec, Sandbox
from cheaptokens.sandbox.catalogue import find_model

LOG = "/api/v1/api_keys/rate_limits/log"


def sandbox(**kw: Any) -> Sandbox:
    return Sandbox(
        [AccountSpec(ADMIN_KEY, diem=Decimal(1000))], now=START, seconds_per_million_tokens=0, **kw
    )


def new_key(c: TestClient) -> dict[str, Any]:
    body = {"apiKeyType": "INFERENCE", "description": "log"}
    data: dict[str, Any] = c.post("/api/v1/api_keys", json=body, headers=ADMIN).json()["data"]
    return data


def chat(c: TestClient, secret: str, **body: Any) -> int:
    payload = {"messages": [{"role": "user", "content": "hi"}], **body}
    return c.post("/api/v1/chat/completions", json=payload, headers=bearer(secret)).status_code


def test_error_budget_breaches_are_logged_with_the_model() -> None:
    sb = sandbox(failed_request_threshold=2)
    with TestClient(sb.app) as c:
        key = new_key(c)
        secret = key["apiKey"]
        assert [chat(c, secret, model=MODEL, bogus=1) for _ in range(4)] == [400] * 3 + [429]
        sb.clock.advance(1)
        assert [chat(c, secret, model="nope") for _ in range(4)] == [404] * 3 + [429]
        sb.clock.advance(1)
        assert [chat(c, secret) for _ in range(4)] == [400] * 3 + [429]  # no model at all
        log = c.get(LOG, headers=ADMIN).json()
    assert log["object"] == "list"
    assert [(e["rateLimitType"], e["modelId"]) for e in log["data"]] == [
        ("FAILED_REQUESTS", "endpoint:api/v1/chat/completions"),
        ("FAILED_REQUESTS", "model:unknown"),
        ("FAILED_REQUESTS", MODEL),
    ]
    first = log["data"][-1]
    assert first == {
        "apiKeyId": key["id"],
        "modelId": MODEL,
        "rateLimitTier": "paid",
        "rateLimitType": "FAILED_REQUESTS",
        "timestamp": "2026-03-10T12:00:00.000Z",
    }


def test_rpm_and_key_creation_breaches_are_logged() -> None:
    sb = sandbox()
    big = "openai-gpt-54-pro"  # an L-tier model: 100 requests a minute
    model = find_model(big)
    assert model is not None and model.tier.rpm == 100
    with TestClient(sb.app) as c:
        secret = new_key(c)["apiKey"]
        statuses = [chat(c, secret, model=big) for _ in range(101)]
        assert statuses == [200] * 100 + [429]
        for _ in range(20):  # 1 key made above: 19 more fit in the minute, then 429
            c.post(
                "/api/v1/api_keys",
                headers=ADMIN,
                json={"apiKeyType": "INFERENCE", "description": "x"},
            )
        log = c.get(LOG, headers=ADMIN).json()["data"]
    assert [(e["rateLimitType"], e["modelId"]) for e in log] == [
        ("RPM", "endpoint:api/v1/api_keys"),
        ("RPM", big),
    ]


def test_the_log_keeps_the_last_50_newest_first() -> None:
    sb = sandbox(failed_request_threshold=0)
    with TestClient(sb.app) as c:
        secret = new_key(c)["apiKey"]
        chat(c, secret, model=MODEL, bogus=1)  # one failure: every later call is refused
        for _ in range(60):
            sb.clock.advance(0.25)
            assert chat(c, secret, model=MODEL) == 429
        log = c.get(LOG, headers=ADMIN).json()["data"]
    assert len(log) == 50
    stamps = [e["timestamp"] for e in log]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == 50
    assert stamps[0] == "2026-03-10T12:00:15.000Z"  # the 60th refusal, 60 x 0.25 s later


def test_the_log_is_per_account() -> None:
    sb = sandbox(failed_request_threshold=0)
    other = "VENICE_ADMIN_KEY_sandbox_0001"
    sb.add_account(admin_key=other, diem=Decimal(1))
    with TestClient(sb.app) as c:
        secret = new_key(c)["apiKey"]
        chat(c, secret, model=MODEL, bogus=1)
        assert chat(c, secret, model=MODEL) == 429
        assert len(c.get(LOG, headers=ADMIN).json()["data"]) == 1
        assert c.get(LOG, headers=bearer(other)).json()["data"] == []
