"""Issue #15 against the SPEC: every request below is a valid ``ChatCompletionRequest`` (or
a valid call of its route) and every sandbox answer validates against the response schema
the SPEC gives for its status (``tests/contract/venice-openapi.yaml``; undeclared error
statuses against ``StandardError``, see :mod:`tests.contract.venice_spec`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from starlette.testclient import TestClient
from tests.contract.venice_spec import request_errors, schema_errors, spec

from cheaptokens.sandbox import AccountSpec, Sandbox

ADMIN_KEY = "VENICE_ADMIN_KEY_sandbox_0000"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
MODEL = "zai-org-glm-5-1"
HELLO = [{"role": "user", "content": "hello there"}]
CHAT = "/chat/completions"


@pytest.fixture
def client() -> Iterator[TestClient]:
    sb = Sandbox(
        [AccountSpec(ADMIN_KEY, diem=Decimal("100"))],
        now=datetime(2026, 3, 10, 12, tzinfo=UTC),
        failed_request_threshold=3,
    )
    with TestClient(sb.app) as c:
        yield c


@pytest.fixture
def key(client: TestClient) -> dict[str, str]:
    made = client.post(
        "/api/v1/api_keys", headers=ADMIN, json={"apiKeyType": "INFERENCE", "description": "c"}
    ).json()["data"]
    return {"Authorization": f"Bearer {made['apiKey']}"}


def chat(client: TestClient, key: dict[str, str], status: int, **fields: Any) -> Any:
    """POST a spec-valid chat request; check the status and the body against the SPEC."""
    body = {"model": MODEL, "messages": HELLO, **fields}
    assert request_errors("ChatCompletionRequest", body) == []
    response = client.post(f"/api/v1{CHAT}", json=body, headers=key)
    assert response.status_code == status, response.text
    answer = response.json()
    assert schema_errors(CHAT, "post", status, answer) == []
    return answer


def spec_example_schema() -> dict[str, Any]:
    """The ``json_schema`` example of the SPEC's ``response_format``."""
    request = spec()["components"]["schemas"]["ChatCompletionRequest"]
    example: dict[str, Any] = request["properties"]["response_format"]["oneOf"][0]["example"]
    return example


# item 1 ---------------------------------------------------------------------------------
def test_traits_and_mappings_routes_and_model_names(
    client: TestClient, key: dict[str, str]
) -> None:
    for path in ("/models/traits", "/models/compatibility_mapping"):
        for query, headers in (("", None), ("?type=text", key), ("?type=image", None)):
            response = client.get(f"/api/v1{path}{query}", headers=headers)
            assert response.status_code == 200
            assert schema_errors(path, "get", 200, response.json()) == []
    traits = client.get("/api/v1/models/traits").json()["data"]
    mappings = client.get("/api/v1/models/compatibility_mapping").json()["data"]
    assert (
        mappings["gpt-4o"]
        == spec()["components"]["schemas"]["ModelCompatibilitySchema"]["example"]["gpt-4o"]
    )
    for name, resolved in [*traits.items(), *mappings.items()]:
        body = chat(client, key, 200, model=name)
        assert body["model"] == resolved  # "The model id used for the request"
    bad = client.get("/api/v1/models/traits?type=nope")
    assert bad.status_code == 400
    assert schema_errors("/models/traits", "get", 400, bad.json()) == []


# item 2 ---------------------------------------------------------------------------------
def test_structured_output(client: TestClient, key: dict[str, str]) -> None:
    example = spec_example_schema()  # {"type": "json_schema", "json_schema": {<schema>}}
    body = chat(client, key, 200, response_format=example)
    jsonschema.validate(
        json.loads(body["choices"][0]["message"]["content"]), example["json_schema"]
    )
    openai_shape = {
        "type": "json_schema",
        "json_schema": {"name": "person", "strict": True, "schema": example["json_schema"]},
    }
    body = chat(client, key, 200, response_format=openai_shape)
    jsonschema.validate(
        json.loads(body["choices"][0]["message"]["content"]), example["json_schema"]
    )
    body = chat(client, key, 200, response_format={"type": "json_object"})
    assert isinstance(json.loads(body["choices"][0]["message"]["content"]), dict)
    refused = chat(client, key, 400, model="llama-3.3-70b", response_format=openai_shape)
    assert refused["details"]["response_format"]["_errors"] == [
        "response_format is not supported by this model"
    ]


# item 3 ---------------------------------------------------------------------------------
def test_tool_calls(client: TestClient, key: dict[str, str]) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
                "required": ["q", "n"],
            },
        },
    }
    for choice in ("required", {"type": "function", "function": {"name": "lookup"}}, "auto"):
        body = chat(client, key, 200, tools=[tool], tool_choice=choice)
        first = body["choices"][0]
        assert first["finish_reason"] == "tool_calls"
        (call,) = first["message"]["tool_calls"]
        assert call["type"] == "function" and call["function"]["name"] == "lookup"
        jsonschema.validate(
            json.loads(call["function"]["arguments"]), tool["function"]["parameters"]
        )  # type: ignore[index]
    body = chat(client, key, 200, tools=[tool], tool_choice="none")
    assert body["choices"][0]["finish_reason"] == "stop"
    chat(client, key, 400, model="hermes-3-llama-3.1-405b", tools=[tool])


# item 4 ---------------------------------------------------------------------------------
def test_n_and_stop(client: TestClient, key: dict[str, str]) -> None:
    body = chat(client, key, 200, n=2)
    assert [c["index"] for c in body["choices"]] == [0, 1]
    text = body["choices"][0]["message"]["content"]
    word = text.split(" ")[3]
    stopped = chat(client, key, 200, stop=[word])
    assert stopped["choices"][0]["message"]["content"] == text[: text.index(word)]
    too_many = {"model": MODEL, "messages": HELLO, "stop": ["a", "b", "c", "d", "e"]}
    refused = client.post(f"/api/v1{CHAT}", json=too_many, headers=key)  # maxItems is 4
    assert refused.status_code == 400
    assert schema_errors(CHAT, "post", 400, refused.json()) == []


# items 5 and 6 --------------------------------------------------------------------------
def test_venice_parameters_and_suffixes(client: TestClient, key: dict[str, str]) -> None:
    params = {"enable_web_search": "auto", "character_slug": "venice", "disable_thinking": True}
    body = chat(client, key, 200, venice_parameters=params)
    assert {k: body["venice_parameters"][k] for k in params} == params
    suffixed = chat(
        client, key, 200, model="deepseek-v3.2:enable_web_search=on&disable_thinking=true"
    )
    assert suffixed["venice_parameters"]["enable_web_search"] == "on"
    assert suffixed["venice_parameters"]["disable_thinking"] is True
    bad = {"enable_web_search": "yes", "disable_thinking": "yes"}
    assert request_errors(
        "ChatCompletionRequest", {"model": MODEL, "messages": HELLO, "venice_parameters": bad}
    )
    response = client.post(
        f"/api/v1{CHAT}",
        json={"model": MODEL, "messages": HELLO, "venice_parameters": bad},
        headers=key,
    )
    assert response.status_code == 400
    assert schema_errors(CHAT, "post", 400, response.json()) == []
    # the SPEC's wording for its 400 DetailedError (SK-ERR: the live body's ``error``)
    described = spec()["paths"][CHAT]["post"]["responses"]["400"]["description"]
    assert response.json()["error"] == described == "Invalid request parameters"
    assert set(response.json()["details"]["venice_parameters"]) == {
        "_errors",
        "enable_web_search",
        "disable_thinking",
    }


# item 7 ---------------------------------------------------------------------------------
def test_rate_limit_log(client: TestClient, key: dict[str, str]) -> None:
    path = "/api_keys/rate_limits/log"
    empty = client.get(f"/api/v1{path}", headers=ADMIN)
    assert schema_errors(path, "get", 200, empty.json()) == [] and empty.json()["data"] == []
    for _ in range(5):  # threshold 3: the 5th is refused with 429 and logged
        client.post(f"/api/v1{CHAT}", json={"model": MODEL, "messages": []}, headers=key)
    log = client.get(f"/api/v1{path}", headers=ADMIN)
    assert log.status_code == 200
    assert schema_errors(path, "get", 200, log.json()) == []
    assert [e["rateLimitType"] for e in log.json()["data"]] == ["FAILED_REQUESTS"]
    denied = client.get(f"/api/v1{path}", headers=key)
    assert denied.status_code == 401
    assert schema_errors(path, "get", 401, denied.json()) == []


# item 8 ---------------------------------------------------------------------------------
def test_unknown_model(client: TestClient, key: dict[str, str]) -> None:
    body = chat(client, key, 404, model="no-such-model")
    assert body == {"error": "Specified model not found: no-such-model"}
