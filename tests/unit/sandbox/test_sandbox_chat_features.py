"""``n``, ``stop``, structured output and tool calls (issue #15, items 2, 3 and 4): what the
fake model answers, how it streams, what it refuses and what it bills."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from starlette.testclient import TestClient
from tests.unit.sandbox.sandbox_helpers import ADMIN, ADMIN_KEY, MODEL, START, bearer

from cheaptokens.sandbox import AccountSpec, Sandbox
from cheaptokens.sandbox.catalogue import count_prompt_tokens, count_tokens, find_model
from cheaptokens.sandbox.structured import json_text

KeyMaker = Callable[..., dict[str, Any]]
HELLO = [{"role": "user", "content": "hello there"}]
NO_SCHEMA_MODEL = "llama-3.3-70b"  # supportsResponseSchema: false
NO_TOOLS_MODEL = "hermes-3-llama-3.1-405b"  # supportsFunctionCalling: false
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "role": {"enum": ["admin", "user"]},
        "pets": {"type": "array", "items": {"$ref": "#/$defs/Pet"}, "minItems": 1},
        "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["name", "age", "role", "pets", "nickname"],
    "additionalProperties": False,
    "$defs": {
        "Pet": {
            "type": "object",
            "properties": {"species": {"type": "string"}, "legs": {"type": "number"}},
            "required": ["species", "legs"],
        }
    },
}
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"enum": ["c", "f"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit", "days"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string"}},
            "required": ["zone"],
        },
    },
}


def post(client: TestClient, secret: str, **body: Any) -> Any:
    payload = {"model": MODEL, "messages": HELLO, **body}
    return client.post("/api/v1/chat/completions", json=payload, headers=bearer(secret))


def events(response: Any) -> list[dict[str, Any]]:
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def streamed_content(chunks: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in chunks
        if c["choices"] and c["choices"][0]["index"] == index
    )


def diem_spent(client: TestClient) -> Decimal:
    balance = client.get("/api/v1/billing/balance", headers=ADMIN).json()
    return Decimal(100) - Decimal(str(balance["balances"]["diem"]))


# -- n ------------------------------------------------------------------------------------
def test_n_returns_n_choices_billed_together(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    one = post(client, secret).json()
    three = post(client, secret, n=3).json()
    choices = three["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2]
    texts = [c["message"]["content"] for c in choices]
    assert texts[0] == one["choices"][0]["message"]["content"]  # choice 0 is the n=1 reply
    assert len(set(texts)) == 3
    assert three["usage"]["completion_tokens"] == sum(count_tokens(t) for t in texts)
    model = find_model(MODEL)
    assert model is not None
    expected = model.cost(three["usage"]["prompt_tokens"], three["usage"]["completion_tokens"])
    assert Decimal(str(three["cost"]["diem"])) == expected
    assert diem_spent(client) == expected + Decimal(str(one["cost"]["diem"]))


def test_n_streams_every_choice(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    whole = post(client, secret, n=2).json()
    chunks = events(post(client, secret, n=2, stream=True))
    for i in (0, 1):
        assert streamed_content(chunks, i) == whole["choices"][i]["message"]["content"]
    finishes = [
        c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]
    ]
    assert sorted(f["index"] for f in finishes) == [0, 1]
    assert chunks[-1]["usage"] == whole["usage"]


@pytest.mark.parametrize("bad", [0, -1, 129, "2", True, 1.5])
def test_bad_n_is_400(client: TestClient, make_key: KeyMaker, bad: Any) -> None:
    response = post(client, make_key()["apiKey"], n=bad)
    assert response.status_code == 400 and response.json()["issues"][0]["path"] == ["n"]


# -- stop ---------------------------------------------------------------------------------
def test_stop_cuts_before_the_sequence(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    text = post(client, secret).json()["choices"][0]["message"]["content"]
    words = text.rstrip(".").split(" ")
    word = words[len(words) // 2]
    expected = text[: text.index(word)]
    for stop in (word, [word], ["zzz-not-there", word]):
        body = post(client, secret, stop=stop).json()
        choice = body["choices"][0]
        assert choice["message"]["content"] == expected
        assert choice["finish_reason"] == "stop"
        assert body["usage"]["completion_tokens"] == count_tokens(expected)
    streamed = events(post(client, secret, stop=word, stream=True))
    assert streamed_content(streamed) == expected
    assert streamed[-1]["usage"]["completion_tokens"] == count_tokens(expected)
    # A stop sequence the reply lacks changes nothing; max_tokens still cuts first.
    assert post(client, secret, stop="zzz").json()["choices"][0]["message"]["content"] == text
    cut = post(client, secret, stop=word, max_tokens=1).json()["choices"][0]
    assert cut["finish_reason"] == ("length" if count_tokens(expected) > 1 else "stop")


@pytest.mark.parametrize("bad", [["a", "b", "c", "d", "e"], [], [1], 5, {"x": 1}])
def test_bad_stop_is_400(client: TestClient, make_key: KeyMaker, bad: Any) -> None:
    response = post(client, make_key()["apiKey"], stop=bad)
    assert response.status_code == 400 and response.json()["issues"][0]["path"] == ["stop"]


# -- structured output --------------------------------------------------------------------
def test_json_schema_reply_matches_the_schema(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    body = post(client, secret, response_format=SCHEMA_FORMAT).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    content = choice["message"]["content"]
    jsonschema.validate(json.loads(content), PERSON)
    assert post(client, secret, response_format=SCHEMA_FORMAT).json()["choices"] == [choice]
    # Billed like any completion: the JSON text's tokens; the schema is part of the prompt.
    assert body["usage"]["completion_tokens"] == count_tokens(content)
    assert body["usage"]["prompt_tokens"] == count_prompt_tokens(HELLO) + count_tokens(
        json_text(PERSON)
    )
    streamed = events(post(client, secret, response_format=SCHEMA_FORMAT, stream=True))
    assert streamed_content(streamed) == content
    assert streamed[-1]["usage"] == body["usage"]


def test_schema_straight_under_json_schema(client: TestClient, make_key: KeyMaker) -> None:
    # The SPEC's example: {"type": "json_schema", "json_schema": {<the schema>}}.
    fmt = {"type": "json_schema", "json_schema": {**PERSON, "name": "person"}}
    content = post(client, make_key()["apiKey"], response_format=fmt).json()["choices"][0]
    jsonschema.validate(json.loads(content["message"]["content"]), PERSON)


def test_json_schema_without_a_schema_answers_an_object(
    client: TestClient, make_key: KeyMaker
) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "anything", "strict": False}}
    body = post(client, make_key()["apiKey"], response_format=fmt).json()
    assert isinstance(json.loads(body["choices"][0]["message"]["content"]), dict)


def test_json_object_and_text_formats(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    reply = post(client, secret, response_format={"type": "json_object"}).json()
    assert isinstance(json.loads(reply["choices"][0]["message"]["content"]), dict)
    plain = post(client, secret).json()["choices"][0]["message"]["content"]
    text = post(client, secret, response_format={"type": "text"}).json()
    assert text["choices"][0]["message"]["content"] == plain


def test_structured_output_on_a_model_without_it(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    for fmt in (SCHEMA_FORMAT, {"type": "json_object"}):
        response = post(client, secret, model=NO_SCHEMA_MODEL, response_format=fmt)
        assert response.status_code == 400
        (problem,) = response.json()["issues"]
        assert problem["path"] == ["response_format"]
        assert problem["message"] == "response_format is not supported by this model"
    assert diem_spent(client) == 0  # refused before admission: nothing billed
    ok = post(client, secret, model=NO_SCHEMA_MODEL, response_format={"type": "text"})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "bad",
    [
        "json_object",
        {"type": "yaml"},
        {"type": "json_object", "extra": 1},
        {"type": "json_schema"},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": "nope"}},
    ],
)
def test_malformed_response_format_is_400(client: TestClient, make_key: KeyMaker, bad: Any) -> None:
    response = post(client, make_key()["apiKey"], response_format=bad)
    assert response.status_code == 400
    assert response.json()["issues"][0]["path"][0] == "response_format"


def test_max_tokens_cuts_json_with_length(client: TestClient, make_key: KeyMaker) -> None:
    body = post(client, make_key()["apiKey"], response_format=SCHEMA_FORMAT, max_tokens=3)
    choice = body.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert body.json()["usage"]["completion_tokens"] == 3


# -- tools --------------------------------------------------------------------------------
def tool_call(body: dict[str, Any]) -> dict[str, Any]:
    (call,) = body["choices"][0]["message"]["tool_calls"]
    return call  # type: ignore[no-any-return]


def test_required_tool_choice_calls_a_tool(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    body = post(client, secret, tools=[WEATHER, TIME], tool_choice="required").json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    call = tool_call(body)
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"  # the first tool
    arguments = json.loads(call["function"]["arguments"])
    jsonschema.validate(arguments, WEATHER["function"]["parameters"])  # type: ignore[index]
    expected_tokens = count_tokens("get_weather") + count_tokens(call["function"]["arguments"])
    assert body["usage"]["completion_tokens"] == expected_tokens
    model = find_model(MODEL)
    assert model is not None
    cost = model.cost(body["usage"]["prompt_tokens"], expected_tokens)
    assert Decimal(str(body["cost"]["diem"])) == cost == diem_spent(client)
    # the tool definitions are part of the billed prompt
    assert body["usage"]["prompt_tokens"] == count_prompt_tokens(HELLO) + count_tokens(
        json_text([WEATHER, TIME])
    )


def test_named_tool_choice(client: TestClient, make_key: KeyMaker) -> None:
    choice = {"type": "function", "function": {"name": "get_time"}}
    body = post(client, make_key()["apiKey"], tools=[WEATHER, TIME], tool_choice=choice)
    call = tool_call(body.json())
    assert call["function"]["name"] == "get_time"
    assert set(json.loads(call["function"]["arguments"])) == {"zone"}


def test_auto_rule(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    asks_time = [{"role": "user", "content": "Use GET_TIME for Rome please"}]
    body = post(client, secret, tools=[WEATHER, TIME], messages=asks_time).json()
    assert tool_call(body)["function"]["name"] == "get_time"  # mentioned by name
    first = post(client, secret, tools=[WEATHER, TIME], tool_choice="auto").json()
    assert tool_call(first)["function"]["name"] == "get_weather"  # none mentioned: the first
    call = tool_call(first)
    answered = [
        *HELLO,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
    ]
    after = post(client, secret, tools=[WEATHER, TIME], messages=answered).json()
    assert after["choices"][0]["finish_reason"] == "stop"
    assert after["choices"][0]["message"]["tool_calls"] == []
    assert after["choices"][0]["message"]["content"]
    none = post(client, secret, tools=[WEATHER], tool_choice="none").json()
    assert none["choices"][0]["message"]["tool_calls"] == []


def test_tool_call_streams_in_openai_chunks(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    whole = post(client, secret, tools=[WEATHER], tool_choice="required").json()
    chunks = events(post(client, secret, tools=[WEATHER], tool_choice="required", stream=True))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    deltas = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    opening = deltas[0]
    call = tool_call(whole)
    assert (opening["index"], opening["id"], opening["type"]) == (0, call["id"], "function")
    assert opening["function"] == {"name": "get_weather", "arguments": ""}
    assert all(set(d) == {"index", "function"} for d in deltas[1:])
    arguments = "".join(d["function"]["arguments"] for d in deltas)
    assert arguments == call["function"]["arguments"]
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finish] == ["tool_calls"]
    assert chunks[-1]["usage"] == whole["usage"] and chunks[-1]["cost"] == whole["cost"]


def test_tools_on_a_model_without_function_calling(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    for field, body in (
        ("tools", {"tools": [WEATHER]}),
        ("tool_choice", {"tool_choice": "auto"}),
        ("parallel_tool_calls", {"parallel_tool_calls": True}),
    ):
        response = post(client, secret, model=NO_TOOLS_MODEL, **body)
        assert response.status_code == 400
        assert response.json()["issues"] == [
            {
                "code": "custom",
                "path": [field],
                "message": f"{field} is not supported by this model",
            }
        ]
    assert post(client, secret, model=NO_TOOLS_MODEL).status_code == 200


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": {"x": 1}},
        {"tools": [{"type": "function"}]},
        {"tools": [{"function": {"description": "no name"}}]},
        {"tools": [WEATHER], "tool_choice": "sometimes"},
        {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        {"tool_choice": "required"},
        {"tools": [WEATHER], "parallel_tool_calls": "yes"},
    ],
)
def test_malformed_tools_are_400(client: TestClient, make_key: KeyMaker, extra: Any) -> None:
    response = post(client, make_key()["apiKey"], **extra)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("schema_key", ["parameters", "input_schema"])
def test_flat_and_anthropic_tool_shapes_are_converted(
    client: TestClient, make_key: KeyMaker, schema_key: str
) -> None:
    """SK-CHAT: ``{type, name, parameters}`` and ``{name, input_schema}`` are read as the
    nested ``{type: "function", function: {...}}`` shape."""
    function: dict[str, Any] = WEATHER["function"]  # type: ignore[assignment]
    flat: dict[str, Any] = {"name": function["name"], schema_key: function["parameters"]}
    if schema_key == "parameters":
        flat["type"] = "function"
    body = post(client, make_key()["apiKey"], tools=[flat], tool_choice="required").json()
    call = tool_call(body)
    assert call["function"]["name"] == "get_weather"
    jsonschema.validate(json.loads(call["function"]["arguments"]), function["parameters"])


def test_web_search_tool_entries_are_accepted_and_never_called(
    client: TestClient, make_key: KeyMaker
) -> None:
    body = post(client, make_key()["apiKey"], tools=[{"type": "web_search"}]).json()
    assert body["choices"][0]["message"]["tool_calls"] == []


def test_unsupported_feature_requests_have_their_own_budget() -> None:
    sb = Sandbox(
        [AccountSpec(ADMIN_KEY, diem=Decimal(100))],
        now=START,
        failed_request_threshold=2,
        unsupported_feature_threshold=3,
    )
    with TestClient(sb.app) as c:
        made = c.post(
            "/api/v1/api_keys", headers=ADMIN, json={"apiKeyType": "INFERENCE", "description": "b"}
        ).json()["data"]
        statuses = [
            post(
                c, made["apiKey"], model=NO_SCHEMA_MODEL, response_format=SCHEMA_FORMAT
            ).status_code
            for _ in range(5)
        ]
        # 4 rejections fit a budget of "more than 3"; the failed-request budget (2) is untouched
        assert statuses == [400, 400, 400, 400, 429]
        log = c.get("/api/v1/api_keys/rate_limits/log", headers=ADMIN).json()["data"]
        assert [(e["rateLimitType"], e["modelId"], e["apiKeyId"]) for e in log] == [
            ("UNSUPPORTED_FEATURE_REQUESTS", NO_SCHEMA_MODEL, made["id"])
        ]


@pytest.mark.parametrize(
    ("field", "value"),
    [("seed", 7), ("stop", "x"), ("n", 2), ("presence_penalty", 0.5), ("frequency_penalty", -1)],
)
def test_openai_reasoning_models_refuse_sampling_fields(
    client: TestClient, make_key: KeyMaker, field: str, value: Any
) -> None:
    secret = make_key()["apiKey"]
    refused = post(client, secret, model="openai-gpt-52", **{field: value})
    assert refused.status_code == 400
    assert refused.json()["issues"][0]["message"] == f"{field} is not supported by this model"
    assert (
        post(client, secret, model="openai-gpt-4o-2024-11-20", **{field: value}).status_code == 200
    )
    assert post(client, secret, model="openai-gpt-oss-120b", **{field: value}).status_code == 200
    neutral = {"n": 1, "presence_penalty": 0, "frequency_penalty": 0}
    assert post(client, secret, model="openai-gpt-52", **neutral).status_code == 200
