"""Clients that go away while their call runs, over real HTTP (uvicorn).

The sandbox's rules (docs/sandbox.md, "Timing"): a streaming call is billed for its prompt
and the completion tokens generated until the sandbox saw the disconnect; a non-streaming
call is billed in full whether or not anyone waits for the answer.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from tests.integration.sandbox.conftest import ADMIN_KEY, START, LiveSandbox, serving

from cheaptokens.sandbox import AccountSpec, Sandbox
from cheaptokens.sandbox.catalogue import count_prompt_tokens, find_model, generate_reply
from cheaptokens.sandbox.ledger import Key

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
MODEL = "zai-org-glm-5-1"
#: 0.1 s per token: a handful of prompt tokens and a 20-token reply take a few seconds.
SLOW = 100_000.0


def long_reply_prompt(minimum: int = 20) -> list[dict[str, str]]:
    """A prompt whose (deterministic) reply has at least ``minimum`` tokens."""
    for n in range(1000):
        messages = [{"role": "user", "content": f"question {n}"}]
        if len(generate_reply(MODEL, messages, None)[0]) >= minimum:
            return messages
    raise AssertionError("no long reply found")


def create_key(live: LiveSandbox) -> dict[str, Any]:
    body = {"apiKeyType": "INFERENCE", "description": "leaver"}
    response = httpx.post(f"{live.base_url}/api_keys", json=body, headers=ADMIN, timeout=10)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def ledger_key(sb: Sandbox, key_id: str) -> Key:
    with sb.ledger.lock:
        return next(a.keys[key_id] for a in sb.ledger.accounts.values() if key_id in a.keys)


def wait_charge(sb: Sandbox, key_id: str) -> Decimal:
    deadline = time.monotonic() + 20
    while not ledger_key(sb, key_id).charges:
        assert time.monotonic() < deadline, "the call was never billed"
        time.sleep(0.02)
    charges = ledger_key(sb, key_id).charges
    assert len(charges) == 1
    return charges[0].amount


@pytest.fixture
def slow_sandbox() -> Any:
    sandbox = Sandbox(
        [AccountSpec(ADMIN_KEY, diem=Decimal("100"))], now=START, seconds_per_million_tokens=SLOW
    )
    with serving(sandbox) as live:
        yield live


def test_stream_abandoned_mid_way_is_billed_for_prompt_and_tokens_generated(
    slow_sandbox: LiveSandbox,
) -> None:
    messages = long_reply_prompt()
    total = len(generate_reply(MODEL, messages, None)[0])
    prompt = count_prompt_tokens(messages)
    data = create_key(slow_sandbox)
    read = 0
    with httpx.stream(
        "POST",
        f"{slow_sandbox.base_url}/chat/completions",
        json={"model": MODEL, "messages": messages, "stream": True},
        headers={"Authorization": f"Bearer {data['apiKey']}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                read += 1
            if read == 3:
                break  # leave: closing the response drops the connection
    amount = wait_charge(slow_sandbox.sandbox, data["id"])
    model = find_model(MODEL)
    assert model is not None
    billed_tokens = [n for n in range(total + 1) if model.cost(prompt, n) == amount]
    assert billed_tokens, f"{amount} is not the price of the prompt plus whole tokens"
    # The prompt in full, the three tokens read, perhaps one or two more generated before the
    # disconnect was seen, but not the whole reply.
    assert 3 <= billed_tokens[0] < total
    balance = httpx.get(f"{slow_sandbox.base_url}/billing/balance", headers=ADMIN, timeout=10)
    assert Decimal(str(balance.json()["balances"]["diem"])) == 100 - amount


def test_non_streaming_call_is_billed_in_full_when_the_client_gives_up(
    slow_sandbox: LiveSandbox,
) -> None:
    messages = long_reply_prompt()
    pieces = generate_reply(MODEL, messages, None)[0]
    data = create_key(slow_sandbox)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{slow_sandbox.base_url}/chat/completions",
            json={"model": MODEL, "messages": messages},
            headers={"Authorization": f"Bearer {data['apiKey']}"},
            timeout=0.5,
        )
    model = find_model(MODEL)
    assert model is not None
    full = model.cost(count_prompt_tokens(messages), len(pieces))
    assert wait_charge(slow_sandbox.sandbox, data["id"]) == full
