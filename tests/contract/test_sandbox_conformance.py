"""Every sandbox response validates against Venice's published OpenAPI schema.

The schema is ``tests/contract/venice-openapi.yaml`` (a copy of Venice's swagger). It
is loaded with YAML 1.2 core-schema scalars: PyYAML's default YAML 1.1 resolver would
turn the file's bare ``on``/``off`` enum values into booleans and its dates into
``datetime`` objects. ``$ref``s are inlined and responses are checked with the
OpenAPI 3.0 validator (which understands ``nullable``).

Statuses an operation does not declare (docs/venice-facts.md says Venice sends them anyway: the
no-credentials 402 on key routes, 400 "API key not found" on GET /api_keys/{id}, 404
unknown model, 403 model privacy) are checked against the spec's shared error
schemas: 402 against ``StandardError`` or ``X402InferencePaymentRequired``, the rest
against ``StandardError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator
from starlette.testclient import TestClient
from tests.contract.venice_spec import schema_for, spec

from cheaptokens.sandbox import AccountSpec, Sandbox

ADMIN_KEY = "VENICE_ADMIN_KEY_sandbox_0000"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
MODEL = "zai-org-glm-5-1"


def test_loader_keeps_on_off_as_strings() -> None:
    params = spec()["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    options = params["venice_parameters"]["properties"]["enable_web_search"]["enum"]
    assert {"on", "off", "auto"} <= set(options)


@dataclass
class Exchange:
    method: str
    path: str  # the spec's path template
    status: int
    body: Any


def scenario() -> Iterator[Exchange]:
    """Drive every covered operation through success and error responses."""
    sb = Sandbox(
        [AccountSpec(ADMIN_KEY, diem=Decimal("100"), usd=Decimal("1"))],
        now=datetime(2026, 3, 10, 12, tzinfo=UTC),
    )
    with TestClient(sb.app) as c:

        def call(
            method: str, template: str, url: str, headers: dict[str, str] | None = None, **kw: Any
        ) -> Any:
            r = c.request(method.upper(), f"/api/v1{url}", headers=headers, **kw)
            exchanges.append(Exchange(method, template, r.status_code, r.json()))
            return r

        exchanges: list[Exchange] = []
        create = {"apiKeyType": "INFERENCE", "description": "contract"}
        made = call(
            "post",
            "/api_keys",
            "/api_keys",
            ADMIN,
            json={
                **create,
                "consumptionLimit": {"diem": 0.0001, "usd": 0},
                "expiresAt": "2026-03-11T00:00:00Z",
                "limitPeriod": "EPOCH",
            },
        ).json()["data"]
        plain = call("post", "/api_keys", "/api_keys", ADMIN, json=create).json()["data"]
        key = {"Authorization": f"Bearer {made['apiKey']}"}
        plain_key = {"Authorization": f"Bearer {plain['apiKey']}"}
        call("post", "/api_keys", "/api_keys", ADMIN, json={**create, "extra": 1})
        call("post", "/api_keys", "/api_keys", key, json=create)
        call("post", "/api_keys", "/api_keys", None, json=create)
        call("get", "/api_keys", "/api_keys", ADMIN)
        call("get", "/api_keys", "/api_keys", {"Authorization": "Bearer VENICE_ADMIN_KEY_bogus"})
        call("get", "/api_keys/{id}", f"/api_keys/{made['id']}", ADMIN)
        call("get", "/api_keys/{id}", "/api_keys/00000000-0000-0000-0000-000000000000", ADMIN)
        call(
            "patch",
            "/api_keys",
            "/api_keys",
            ADMIN,
            json={"id": made["id"], "description": "patched", "consumptionLimit": {"usd": None}},
        )
        call(
            "patch", "/api_keys", "/api_keys", ADMIN, json={"id": made["id"], "apiKeyType": "ADMIN"}
        )
        call("get", "/api_keys/rate_limits", "/api_keys/rate_limits", key)
        call("get", "/api_keys/rate_limits", "/api_keys/rate_limits", ADMIN)
        call("get", "/billing/balance", "/billing/balance", ADMIN)
        call("get", "/billing/balance", "/billing/balance", key)
        call("get", "/models", "/models")
        call("get", "/models", "/models?type=embedding", key)
        call("get", "/models", "/models?type=all")
        hello = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}
        call("post", "/chat/completions", "/chat/completions", key, json=hello)
        call("post", "/chat/completions", "/chat/completions", key, json=hello)  # 402 DIEM cap
        call(
            "post",
            "/chat/completions",
            "/chat/completions",
            plain_key,
            json={**hello, "max_tokens": 3},
        )
        call(
            "post", "/chat/completions", "/chat/completions", plain_key, json={**hello, "bogus": 1}
        )
        call(
            "post",
            "/chat/completions",
            "/chat/completions",
            plain_key,
            json={**hello, "model": "nope"},
        )
        call("post", "/chat/completions", "/chat/completions", None, json=hello)
        call(
            "post",
            "/chat/completions",
            "/chat/completions",
            {"Authorization": "Bearer nope"},
            json=hello,
        )
        emb = {"model": "text-embedding-bge-m3", "input": ["a b", "c"]}
        call("post", "/embeddings", "/embeddings", plain_key, json=emb)
        call("post", "/embeddings", "/embeddings", plain_key, json={**emb, "input": [[1, 2]]})
        call("post", "/embeddings", "/embeddings", None, json=emb)
        private = call(
            "post", "/api_keys", "/api_keys", ADMIN, json={**create, "modelPrivacy": "PRIVATE_TEXT"}
        ).json()["data"]
        private_key = {"Authorization": f"Bearer {private['apiKey']}"}
        anonymous = {**hello, "model": "openai-gpt-54-pro"}
        call("post", "/chat/completions", "/chat/completions", private_key, json=anonymous)
        anon_emb = {**emb, "model": "text-embedding-3-small"}
        call("post", "/embeddings", "/embeddings", private_key, json=anon_emb)
        call("get", "/models", "/models?type=all", private_key)
        call(
            "patch",
            "/api_keys",
            "/api_keys",
            ADMIN,
            json={"id": private["id"], "modelPrivacy": "PRIVATE_ONLY"},
        )
        call("get", "/api_keys/{id}", f"/api_keys/{private['id']}", ADMIN)
        call(
            "patch",
            "/api_keys",
            "/api_keys",
            ADMIN,
            json={"id": private["id"], "modelPrivacy": "NOPE"},
        )
        sb.faults.add(
            {"status": 429, "path": "/api/v1/embeddings"},
            {"status": 503, "path": "/api/v1/chat/completions"},
            {"status": 500, "path": "/api/v1/api_keys", "method": "GET"},
        )
        call("post", "/embeddings", "/embeddings", plain_key, json=emb)
        call("post", "/chat/completions", "/chat/completions", plain_key, json=hello)
        call("get", "/api_keys", "/api_keys", ADMIN)
        for _ in range(20):
            c.post("/api/v1/api_keys", headers=ADMIN, json=create)
        call("post", "/api_keys", "/api_keys", ADMIN, json=create)  # 429
        call("delete", "/api_keys", f"/api_keys?id={plain['id']}", ADMIN)
        call("delete", "/api_keys", f"/api_keys?id={plain['id']}", ADMIN)
        call("delete", "/api_keys", "/api_keys", ADMIN)
        sb.clock.set(datetime(2026, 3, 11, tzinfo=UTC))
        call("get", "/api_keys", "/api_keys", ADMIN)
        call("patch", "/api_keys", "/api_keys", ADMIN, json={"id": made["id"], "description": "x"})
    yield from exchanges


def overshoot_scenario() -> Iterator[Exchange]:
    """One call takes the account's DIEM negative and a key past its cap; every view of it."""
    sb = Sandbox(
        [AccountSpec(ADMIN_KEY, diem=Decimal("0.1"))],
        now=datetime(2026, 3, 10, 12, tzinfo=UTC),
        seconds_per_million_tokens=0,
    )
    exchanges: list[Exchange] = []
    with TestClient(sb.app) as c:

        def call(method: str, template: str, url: str, headers: dict[str, str], **kw: Any) -> Any:
            r = c.request(method.upper(), f"/api/v1{url}", headers=headers, **kw)
            exchanges.append(Exchange(method, template, r.status_code, r.json()))
            return r

        made = call(
            "post",
            "/api_keys",
            "/api_keys",
            ADMIN,
            json={
                "apiKeyType": "INFERENCE",
                "description": "overshoot",
                "consumptionLimit": {"diem": 0.05, "usd": 0},
            },
        ).json()["data"]
        key = {"Authorization": f"Bearer {made['apiKey']}"}
        big = {"model": MODEL, "messages": [{"role": "user", "content": "x " * 150_000}]}
        call("post", "/chat/completions", "/chat/completions", key, json=big)
        call("post", "/chat/completions", "/chat/completions", key, json=big)  # 402
        call("get", "/billing/balance", "/billing/balance", ADMIN)
        call("get", "/api_keys", "/api_keys", ADMIN)
        call("get", "/api_keys/{id}", f"/api_keys/{made['id']}", ADMIN)
        call("get", "/api_keys/rate_limits", "/api_keys/rate_limits", key)
    yield from exchanges


@pytest.fixture(scope="module")
def exchanges() -> list[Exchange]:
    return [*scenario(), *overshoot_scenario()]


def test_overshoot_views_carry_negative_numbers(exchanges: list[Exchange]) -> None:
    balances = [e.body for e in exchanges if e.path == "/billing/balance" and e.status == 200]
    assert any(b["balances"]["diem"] < 0 for b in balances)
    keys = [
        e.body["data"]
        for e in exchanges
        if e.path == "/api_keys/{id}" and e.status == 200 and "currentPeriodUsage" in e.body["data"]
    ]
    assert any(
        Decimal(k["currentPeriodUsage"]["diem"]) > Decimal(str(k["consumptionLimits"]["diem"]))
        for k in keys
    )


def test_every_response_matches_its_schema(exchanges: list[Exchange]) -> None:
    failures = []
    for ex in exchanges:
        validator = OAS30Validator(schema_for(ex.path, ex.method, ex.status))
        errors = [e.message for e in validator.iter_errors(ex.body)]
        if errors:
            failures.append(f"{ex.method.upper()} {ex.path} {ex.status}: {errors[:3]}")
    assert not failures, "\n".join(failures)


def test_scenario_covers_the_operations_and_errors(exchanges: list[Exchange]) -> None:
    seen = {(e.method, e.path, e.status) for e in exchanges}
    expected = {
        ("post", "/api_keys", 200),
        ("post", "/api_keys", 400),
        ("post", "/api_keys", 401),
        ("post", "/api_keys", 402),
        ("post", "/api_keys", 429),
        ("get", "/api_keys", 200),
        ("get", "/api_keys", 401),
        ("get", "/api_keys", 500),
        ("get", "/api_keys/{id}", 200),
        ("get", "/api_keys/{id}", 400),
        ("patch", "/api_keys", 200),
        ("patch", "/api_keys", 400),
        ("delete", "/api_keys", 200),
        ("delete", "/api_keys", 400),
        ("get", "/api_keys/rate_limits", 200),
        ("get", "/billing/balance", 200),
        ("get", "/billing/balance", 401),
        ("get", "/models", 200),
        ("post", "/chat/completions", 200),
        ("post", "/chat/completions", 400),
        ("post", "/chat/completions", 401),
        ("post", "/chat/completions", 402),
        ("post", "/chat/completions", 403),
        ("post", "/chat/completions", 404),
        ("post", "/chat/completions", 503),
        ("post", "/embeddings", 200),
        ("post", "/embeddings", 400),
        ("post", "/embeddings", 402),
        ("post", "/embeddings", 403),
        ("post", "/embeddings", 429),
    }
    assert expected <= seen, sorted(expected - seen)


def test_model_privacy_round_trips_in_every_key_shape(exchanges: list[Exchange]) -> None:
    shown = [
        e.body["data"]["modelPrivacy"]
        for e in exchanges
        if e.path in ("/api_keys", "/api_keys/{id}")
        and e.status == 200
        and isinstance(e.body.get("data"), dict)
        and "modelPrivacy" in e.body["data"]
    ]
    assert {"ALL", "PRIVATE_TEXT", "PRIVATE_ONLY"} <= set(shown)


def test_stream_final_usage_matches_the_usage_schema() -> None:
    sb = Sandbox([AccountSpec(ADMIN_KEY, diem=Decimal("100"))])
    with TestClient(sb.app) as c:
        secret = c.post(
            "/api/v1/api_keys", headers=ADMIN, json={"apiKeyType": "INFERENCE", "description": "s"}
        ).json()["data"]["apiKey"]
        r = c.post(
            "/api/v1/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        )
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    final = json.loads(events[-2])
    props = schema_for("/chat/completions", "post", 200)["properties"]
    OAS30Validator(props["usage"]).validate(final["usage"])
    OAS30Validator(props["cost"]).validate(final["cost"])
