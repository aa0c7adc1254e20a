"""Issue #15 through the third-party clients buyers use, against a live sandbox over real
HTTP: the ``openai`` SDK (``.parse()`` with pydantic models, tool calls, ``n``/``stop``,
traits, suffixes, errors), ``langchain-openai`` (``with_structured_output``,
``bind_tools``), the ``llm`` CLI (``--schema``) and the Venice SDK ``venice-py`` (traits
and mappings, the unknown-model 404, the rate-limit log it reads with its own response
model)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field
from tests.integration.sandbox.conftest import ADMIN_KEY, LiveSandbox, serving

from cheaptokens.sandbox import AccountSpec, Sandbox

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
MODEL = "zai-org-glm-5-1"
NO_SCHEMA_MODEL = "llama-3.3-70b"
NO_TOOLS_MODEL = "hermes-3-llama-3.1-405b"
HELLO: Any = [{"role": "user", "content": "Tell me about a person."}]


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


class Pet(BaseModel):
    species: str
    legs: int = Field(ge=0, le=8)


class Person(BaseModel):
    name: str
    age: int = Field(ge=0, le=150)
    role: Role
    pets: list[Pet]
    nickname: str | None


class GetWeather(BaseModel):
    """Weather in a city."""

    city: str
    days: int = Field(ge=1, le=7)


def create_key(live: LiveSandbox) -> str:
    body = {"apiKeyType": "INFERENCE", "description": "client test"}
    response = httpx.post(f"{live.base_url}/api_keys", json=body, headers=ADMIN, timeout=10)
    assert response.status_code == 200, response.text
    secret: str = response.json()["data"]["apiKey"]
    return secret


_made: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    """Close every client :func:`sdk` made, so no socket is left to the garbage collector."""
    yield
    while _made:
        _made.pop().close()


def sdk(live: LiveSandbox) -> openai.OpenAI:
    client = openai.OpenAI(
        api_key=create_key(live), base_url=live.base_url, max_retries=0, timeout=10
    )
    _made.append(client)
    return client


def test_parse_returns_the_pydantic_model(live_sandbox: LiveSandbox) -> None:
    client = sdk(live_sandbox)
    completion = client.chat.completions.parse(model=MODEL, messages=HELLO, response_format=Person)
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person) and isinstance(person.role, Role)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    beta = client.beta.chat.completions.parse(model=MODEL, messages=HELLO, response_format=Person)
    assert beta.choices[0].message.parsed == person  # deterministic


def test_parse_on_a_model_without_response_schema(live_sandbox: LiveSandbox) -> None:
    client = sdk(live_sandbox)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.parse(model=NO_SCHEMA_MODEL, messages=HELLO, response_format=Person)
    issue = caught.value.response.json()["issues"][0]
    assert issue["path"] == ["response_format"]
    assert issue["message"] == "response_format is not supported by this model"


def test_tool_calls_through_the_sdk(live_sandbox: LiveSandbox) -> None:
    client = sdk(live_sandbox)
    tool = openai.pydantic_function_tool(GetWeather)
    completion = client.chat.completions.create(
        model=MODEL, messages=HELLO, tools=[tool], tool_choice="required"
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "GetWeather"
    GetWeather.model_validate_json(call.function.arguments)

    parsed = client.chat.completions.parse(model=MODEL, messages=HELLO, tools=[tool])
    calls = parsed.choices[0].message.tool_calls
    assert calls is not None
    assert isinstance(calls[0].function.parsed_arguments, GetWeather)

    with client.chat.completions.stream(
        model=MODEL, messages=HELLO, tools=[tool], tool_choice="required"
    ) as stream:
        final = stream.get_final_completion()
    streamed = final.choices[0].message.tool_calls
    assert streamed is not None
    assert streamed[0].function.arguments == call.function.arguments
    assert streamed[0].id == call.id and final.choices[0].finish_reason == "tool_calls"

    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=NO_TOOLS_MODEL, messages=HELLO, tools=[tool])


def test_tool_loop_ends_with_a_text_answer(live_sandbox: LiveSandbox) -> None:
    client = sdk(live_sandbox)
    tool = openai.pydantic_function_tool(GetWeather)
    messages: list[Any] = [{"role": "user", "content": "Weather in Rome?"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[tool])
    (call,) = first.choices[0].message.tool_calls or []
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"sky": "clear"})},
    ]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[tool])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content


def test_n_and_stop_through_the_sdk(live_sandbox: LiveSandbox) -> None:
    client = sdk(live_sandbox)
    two = client.chat.completions.create(model=MODEL, messages=HELLO, n=2)
    assert [c.index for c in two.choices] == [0, 1]
    texts = [c.message.content or "" for c in two.choices]
    assert texts[0] != texts[1]
    word = texts[0].split(" ")[2]
    stopped = client.chat.completions.create(model=MODEL, messages=HELLO, stop=[word])
    assert stopped.choices[0].message.content == texts[0][: texts[0].index(word)]
    stream = client.chat.completions.create(model=MODEL, messages=HELLO, n=2, stream=True)
    text: dict[int, str] = {0: "", 1: ""}
    for chunk in stream:
        for c in chunk.choices:
            text[c.index] += c.delta.content or ""
    assert [text[0], text[1]] == texts


def test_traits_suffixes_and_errors_through_the_sdk(live_sandbox: LiveSandbox) -> None:
    client = sdk(live_sandbox)
    traits = httpx.get(f"{live_sandbox.base_url}/models/traits", timeout=10).json()["data"]
    for trait in ("default", "most_intelligent", "function_calling_default"):
        completion = client.chat.completions.create(model=trait, messages=HELLO)
        assert completion.model == traits[trait]
    assert client.chat.completions.create(model="gpt-4o", messages=HELLO).model == MODEL

    suffixed = client.chat.completions.create(
        model="deepseek-v3.2:enable_web_search=on&disable_thinking=true", messages=HELLO
    )
    params = (suffixed.model_extra or {})["venice_parameters"]
    assert (params["enable_web_search"], params["disable_thinking"]) == ("on", True)

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            extra_body={"venice_parameters": {"enable_web_search": "yes"}},
        )
    assert caught.value.response.json()["issues"][0]["path"] == [
        "venice_parameters",
        "enable_web_search",
    ]
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-9-ultra", messages=HELLO)
    assert missing.value.response.json() == {"error": "Specified model not found: gpt-9-ultra"}


def test_rate_limit_log_over_http() -> None:
    strict = Sandbox([AccountSpec(ADMIN_KEY, diem=Decimal(100))], failed_request_threshold=1)
    with serving(strict) as live:
        client = sdk(live)
        for _ in range(3):  # 404, 404, then the budget's 429
            with pytest.raises(openai.APIStatusError):
                client.chat.completions.create(model="nope", messages=HELLO)
        log = httpx.get(f"{live.base_url}/api_keys/rate_limits/log", headers=ADMIN, timeout=10)
    assert [(e["rateLimitType"], e["modelId"]) for e in log.json()["data"]] == [
        ("FAILED_REQUESTS", "model:unknown")
    ]


def langchain(live: LiveSandbox, model: str = MODEL) -> ChatOpenAI:
    return ChatOpenAI(
        model=model,
        api_key=create_key(live),  # type: ignore[arg-type]
        base_url=live.base_url,
        max_retries=0,
        timeout=10,
    )


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_with_structured_output(live_sandbox: LiveSandbox, method: str) -> None:
    chat = langchain(live_sandbox)
    structured = chat.with_structured_output(Person, method=method)  # type: ignore[arg-type]
    person = structured.invoke("Tell me about a person.")
    assert isinstance(person, Person)


def test_langchain_json_mode(live_sandbox: LiveSandbox) -> None:
    # json_mode only promises a JSON object; the fake model's is {"answer": "..."}.
    chat = langchain(live_sandbox).with_structured_output(None, method="json_mode")
    reply = chat.invoke("Reply in JSON")
    assert isinstance(reply, dict) and isinstance(reply["answer"], str)


def test_langchain_bind_tools(live_sandbox: LiveSandbox) -> None:
    chat = langchain(live_sandbox).bind_tools([GetWeather], tool_choice="required")
    message = chat.invoke("Weather in Rome?")
    (call,) = message.tool_calls  # type: ignore[attr-defined]
    assert call["name"] == "GetWeather"
    GetWeather.model_validate(call["args"])
    refused = langchain(live_sandbox, NO_SCHEMA_MODEL).with_structured_output(Person)
    with pytest.raises(openai.BadRequestError):
        refused.invoke("Tell me about a person.")


async def _venice_py_session(live: LiveSandbox) -> dict[str, Any]:
    """What ``venice-py`` (a Venice SDK from PyPI, import ``venice_ai``) sees: traits and
    mappings, a trait as the chat model, the unknown-model 404 and the budget's 429 on an
    INFERENCE key, then the rate-limit log, refused to that key and read with the ADMIN key."""
    from venice_ai import VeniceClient
    from venice_ai import exceptions as venice_errors

    seen: dict[str, Any] = {}
    async with VeniceClient(api_key=create_key(live), base_url=live.base_url, max_retries=0) as c:
        seen["traits"] = (await c.models.list_traits()).data
        seen["mappings"] = (await c.models.list_compatibility()).data
        reply = await c.chat.completions.create(model="most_intelligent", messages=HELLO)
        seen["trait_model"] = reply.model
        with pytest.raises(venice_errors.NotFoundError) as missing:
            await c.chat.completions.create(model="gpt-9-ultra", messages=HELLO)
        seen["missing"] = str(missing.value)
        with pytest.raises(venice_errors.NotFoundError):  # more than 1 failure: the budget
            await c.chat.completions.create(model="gpt-9-ultra", messages=HELLO)
        with pytest.raises(venice_errors.RateLimitError):
            await c.chat.completions.create(model="gpt-9-ultra", messages=HELLO)
        with pytest.raises(venice_errors.AuthenticationError) as denied:
            await c.api_keys.get_rate_limit_logs()
        seen["denied"] = str(denied.value)
    async with VeniceClient(api_key=ADMIN_KEY, base_url=live.base_url, max_retries=0) as admin:
        seen["log"] = (await admin.api_keys.get_rate_limit_logs()).data
    return seen


def test_venice_py_sdk_traits_errors_and_rate_limit_log() -> None:
    strict = Sandbox([AccountSpec(ADMIN_KEY, diem=Decimal(100))], failed_request_threshold=1)
    with serving(strict) as live:
        seen = asyncio.run(_venice_py_session(live))
    assert seen["trait_model"] == seen["traits"]["most_intelligent"]
    assert seen["mappings"]["gpt-4o"] == MODEL
    assert seen["missing"].endswith("Specified model not found: gpt-9-ultra")
    assert seen["denied"].endswith("Admin API key required")
    (entry,) = seen["log"]  # the budget's 429, parsed by the SDK's own response model
    assert (entry.rateLimitType, entry.modelId, entry.rateLimitTier) == (
        "FAILED_REQUESTS",
        "model:unknown",
        "paid",
    )
    assert entry.timestamp.endswith("Z")


def test_llm_cli_schema(live_sandbox: LiveSandbox, tmp_path: Path) -> None:
    """``llm --schema`` (the ``llm`` CLI, an OpenAI-compatible model configured in its
    ``extra-openai-models.yaml``) gets JSON matching its schema; on a model without
    ``supportsResponseSchema`` it fails with the sandbox's 400."""
    (tmp_path / "extra-openai-models.yaml").write_text(
        "".join(
            f"- model_id: {alias}\n  model_name: {model}\n  api_base: {live_sandbox.base_url}\n"
            "  api_key_name: sandbox\n  supports_schema: true\n"
            for alias, model in (("sandbox-glm", MODEL), ("sandbox-llama", NO_SCHEMA_MODEL))
        ),
        encoding="utf-8",
    )
    key = create_key(live_sandbox)
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path)}

    def llm(alias: str) -> subprocess.CompletedProcess[str]:
        args = ["-m", alias, "--key", key, "--no-log", "--schema", "name, age int, pets"]
        return subprocess.run(
            [sys.executable, "-m", "llm", *args, "Tell me about a person."],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    answered = llm("sandbox-glm")
    assert answered.returncode == 0, answered.stderr
    person = json.loads(answered.stdout)
    assert set(person) == {"name", "age", "pets"} and isinstance(person["age"], int)
    refused = llm("sandbox-llama")
    assert refused.returncode != 0 and "400" in refused.stderr
