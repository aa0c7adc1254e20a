"""The official ``openai`` SDK against a live sandbox over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import openai
import pytest
from tests.integration.sandbox.conftest import ADMIN_KEY, LiveSandbox

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
MODEL = "zai-org-glm-5-1"
HELLO = [{"role": "user", "content": "hello there"}]


def create_key(live: LiveSandbox, **fields: object) -> str:
    body = {"apiKeyType": "INFERENCE", "description": "sdk test", **fields}
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


def sdk(live: LiveSandbox, secret: str) -> openai.OpenAI:
    client = openai.OpenAI(api_key=secret, base_url=live.base_url, max_retries=0, timeout=10)
    _made.append(client)
    return client


def test_chat_stream_and_models(live_sandbox: LiveSandbox) -> None:
    client = sdk(live_sandbox, create_key(live_sandbox))
    completion = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=5)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 5

    stream = client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None
    assert final.usage.completion_tokens > 0 and text
    assert Decimal(str((final.model_extra or {})["cost"]["diem"])) > 0

    ids = {m.id for m in client.models.list()}
    assert MODEL in ids


def test_sdk_error_classes(live_sandbox: LiveSandbox) -> None:
    bad = sdk(live_sandbox, "VENICE_INFERENCE_KEY_not_a_real_one")
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=MODEL, messages=HELLO)

    secret = create_key(live_sandbox, consumptionLimit={"diem": 0.0001})
    client = sdk(live_sandbox, secret)
    live_sandbox.sandbox.faults.add({"status": 429, "path": "/api/v1/chat/completions"})
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=HELLO)

    client.chat.completions.create(model=MODEL, messages=HELLO)  # spends past the cap
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=MODEL, messages=HELLO)
    assert caught.value.status_code == 402
    assert "DIEM spend limit exceeded" in caught.value.response.json()["error"]


def test_drop_over_real_http(live_sandbox: LiveSandbox) -> None:
    httpx.post(
        f"{live_sandbox.root}/_sandbox/faults",
        timeout=10,
        json={"drop": True, "method": "POST", "path": "/api/v1/api_keys"},
    )
    with pytest.raises(httpx.TransportError):
        httpx.post(
            f"{live_sandbox.base_url}/api_keys",
            headers=ADMIN,
            timeout=10,
            json={"apiKeyType": "INFERENCE", "description": "dropped"},
        )
    keys = httpx.get(f"{live_sandbox.base_url}/api_keys", headers=ADMIN, timeout=10).json()["data"]
    assert "dropped" in [k["description"] for k in keys]


def test_drop_seen_by_the_sdk_as_connection_error(live_sandbox: LiveSandbox) -> None:
    client = sdk(live_sandbox, create_key(live_sandbox))
    live_sandbox.sandbox.faults.add({"drop": True, "path": "/api/v1/chat/completions"})
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model=MODEL, messages=HELLO)
    balance = httpx.get(f"{live_sandbox.base_url}/billing/balance", headers=ADMIN, timeout=10)
    assert balance.json()["balances"]["diem"] < 100  # the call ran and was billed


def test_latency_over_real_http_trips_a_short_client_timeout(live_sandbox: LiveSandbox) -> None:
    live_sandbox.sandbox.faults.add({"latency_ms": 3000, "path": "/api/v1/billing/balance"})
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{live_sandbox.base_url}/billing/balance", headers=ADMIN, timeout=0.3)


def test_concurrent_calls_keep_the_ledger_exact(live_sandbox: LiveSandbox) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def create(_: int) -> int:
        body = {"apiKeyType": "INFERENCE", "description": "race"}
        return httpx.post(
            f"{live_sandbox.base_url}/api_keys", json=body, headers=ADMIN, timeout=10
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(create, range(30)))
    assert statuses == [200] * 20 + [429] * 10

    live_sandbox.sandbox.clock.advance(60)
    secret = create_key(live_sandbox)

    def call(n: int) -> Decimal:
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"question {n}"}]}
        response = httpx.post(
            f"{live_sandbox.base_url}/chat/completions",
            json=body,
            timeout=10,
            headers={"Authorization": f"Bearer {secret}"},
        )
        return Decimal(str(response.json()["cost"]["diem"]))

    with ThreadPoolExecutor(max_workers=8) as pool:
        costs = list(pool.map(call, range(40)))
    balance = httpx.get(
        f"{live_sandbox.base_url}/billing/balance", headers=ADMIN, timeout=10
    ).json()
    assert Decimal(str(balance["balances"]["diem"])) == Decimal(100) - sum(costs)
