"""Admission before billing, with time (docs/venice-facts.md §2.3, §6 "Overshoot").

A call is admitted at its start, runs for a time that grows with its tokens (real wall
time, even on a frozen sandbox clock) and is billed at its end. These tests attack that:
parallel calls on one capped key, a probe while a call runs, a call that runs past
midnight, a key that expires while its call runs.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient
from tests.unit.sandbox.sandbox_helpers import ADMIN, ADMIN_KEY, MODEL, START, bearer, prompt_of

from cheaptokens.sandbox import DEFAULT_SECONDS_PER_MILLION_TOKENS, AccountSpec, Sandbox
from cheaptokens.sandbox.ledger import Key
from cheaptokens.sandbox.metering import run_seconds

DIEM_CAP = "API key DIEM spend limit exceeded."
#: 1,000 prompt tokens (+ a short reply) at this rate run for about half a second.
SLOW = 500.0


def sandbox_with(
    rate: float, *, diem: str = "100", usd: str = "0", now: datetime = START
) -> Sandbox:
    return Sandbox(
        [AccountSpec(ADMIN_KEY, diem=Decimal(diem), usd=Decimal(usd))],
        now=now,
        seconds_per_million_tokens=rate,
    )


def new_key(client: TestClient, **fields: Any) -> dict[str, Any]:
    body = {"apiKeyType": "INFERENCE", "description": "attack", **fields}
    response = client.post("/api/v1/api_keys", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def chat_body(tokens: int = 1000, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": prompt_of(tokens), **extra}


def diem_balance(client: TestClient) -> Decimal:
    body = client.get("/api/v1/billing/balance", headers=ADMIN).json()
    return Decimal(str(body["balances"]["diem"]))


def period_usage(client: TestClient, key_id: str) -> Decimal:
    got = client.get(f"/api/v1/api_keys/{key_id}", headers=ADMIN).json()["data"]
    return Decimal(got["currentPeriodUsage"]["diem"])


def ledger_key(sb: Sandbox, key_id: str) -> Key:
    with sb.ledger.lock:
        return next(a.keys[key_id] for a in sb.ledger.accounts.values() if key_id in a.keys)


def wait_admitted(sb: Sandbox, key_id: str) -> None:
    """Until the key's call has been admitted (admission stamps ``lastUsedAt``)."""
    deadline = time.monotonic() + 10
    while ledger_key(sb, key_id).last_used_at is None:
        assert time.monotonic() < deadline, "the call was never admitted"
        time.sleep(0.01)


def test_default_rate_runs_a_400k_call_for_about_a_second() -> None:
    assert run_seconds(400_000, DEFAULT_SECONDS_PER_MILLION_TOKENS) == pytest.approx(1.0)
    assert run_seconds(400_000, 0) == 0
    with pytest.raises(ValueError, match="negative"):
        sandbox_with(-1)


def test_run_time_is_real_time_and_grows_with_tokens_while_the_clock_stays_frozen() -> None:
    sb = sandbox_with(SLOW)
    with TestClient(sb.app) as c:
        secret = new_key(c)["apiKey"]
        started = time.monotonic()
        body = c.post("/api/v1/chat/completions", json=chat_body(), headers=bearer(secret)).json()
        elapsed = time.monotonic() - started
        tokens = body["usage"]["total_tokens"]
        assert elapsed >= run_seconds(tokens, SLOW) >= 0.5
        started = time.monotonic()
        c.post(
            "/api/v1/embeddings",
            json={"model": "text-embedding-bge-m3", "input": "x " * 600},
            headers=bearer(secret),
        )
        assert time.monotonic() - started >= run_seconds(600, SLOW)
        assert sb.clock.now() == START  # the run time does not move the sandbox clock


def test_parallel_calls_on_one_key_are_all_admitted_and_overshoot_its_cap() -> None:
    """Five calls race on a key whose cap covers one and a half of them: each is admitted
    before any is billed, so all five run and the key ends far above its cap."""
    sb = sandbox_with(SLOW)

    async def attack() -> tuple[list[int], Decimal]:
        transport = httpx.ASGITransport(app=sb.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sb") as http:
            probe = await http.post(
                "/api/v1/api_keys",
                headers=ADMIN,
                json={"apiKeyType": "INFERENCE", "description": "probe"},
            )
            one = await http.post(
                "/api/v1/chat/completions",
                json=chat_body(),
                headers=bearer(probe.json()["data"]["apiKey"]),
            )
            cost = Decimal(str(one.json()["cost"]["diem"]))
            limited = await http.post(
                "/api/v1/api_keys",
                headers=ADMIN,
                json={
                    "apiKeyType": "INFERENCE",
                    "description": "victim",
                    "consumptionLimit": {"diem": float(cost * Decimal("1.5")), "usd": 0},
                },
            )
            secret = limited.json()["data"]["apiKey"]
            calls = [
                http.post("/api/v1/chat/completions", json=chat_body(), headers=bearer(secret))
                for _ in range(5)
            ]
            statuses = [r.status_code for r in await asyncio.gather(*calls)]
            after = await http.post(
                "/api/v1/chat/completions", json=chat_body(), headers=bearer(secret)
            )
            assert after.status_code == 402 and after.json()["error"].startswith(DIEM_CAP)
            return statuses, cost

    statuses, cost = asyncio.run(attack())
    assert statuses == [200] * 5
    with TestClient(sb.app) as c:
        victim = next(
            k
            for k in c.get("/api/v1/api_keys", headers=ADMIN).json()["data"]
            if k["description"] == "victim"
        )
        assert Decimal(victim["currentPeriodUsage"]["diem"]) == (5 * cost).quantize(
            Decimal("0.0001")
        )
        assert (
            Decimal(victim["currentPeriodUsage"]["diem"]) > 3 * victim["consumptionLimits"]["diem"]
        )
        assert diem_balance(c) == Decimal(100) - 6 * cost


def test_with_rate_zero_calls_are_billed_before_the_next_is_admitted() -> None:
    sb = sandbox_with(0)

    async def attack() -> list[int]:
        transport = httpx.ASGITransport(app=sb.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sb") as http:
            made = await http.post(
                "/api/v1/api_keys",
                headers=ADMIN,
                json={
                    "apiKeyType": "INFERENCE",
                    "description": "x",
                    "consumptionLimit": {"diem": 0.0000001},
                },
            )
            secret = made.json()["data"]["apiKey"]
            calls = [
                http.post("/api/v1/chat/completions", json=chat_body(), headers=bearer(secret))
                for _ in range(3)
            ]
            return sorted(r.status_code for r in await asyncio.gather(*calls))

    assert asyncio.run(attack()) == [200, 402, 402]


def test_a_running_call_holds_no_lock_and_is_billed_only_at_its_end() -> None:
    """While a 2-second call runs, another thread's request is answered at once and sees
    the call admitted (lastUsedAt) but not billed; the charge lands when the call ends."""
    sb = sandbox_with(2000.0)  # ~1,000 tokens: about 2 s
    with TestClient(sb.app) as c:
        data = new_key(c, consumptionLimit={"diem": 50})
        secret = data["apiKey"]
        result: dict[str, Any] = {}

        def long_call() -> None:
            with TestClient(sb.app) as other:
                result["response"] = other.post(
                    "/api/v1/chat/completions", json=chat_body(), headers=bearer(secret)
                )

        runner = threading.Thread(target=long_call)
        runner.start()
        wait_admitted(sb, data["id"])
        # Admitted, still running: the probe is answered and nothing is billed yet.
        assert diem_balance(c) == 100
        assert period_usage(c, data["id"]) == 0
        assert runner.is_alive()
        runner.join(timeout=30)
        cost = Decimal(str(result["response"].json()["cost"]["diem"]))
        assert cost > 0
        assert diem_balance(c) == 100 - cost
        assert period_usage(c, data["id"]) == cost.quantize(Decimal("0.0001"))


def test_a_call_running_past_midnight_is_billed_to_the_new_day() -> None:
    """Sandbox reading: the charge is made when the call ends, so a call admitted at
    23:59:59 that ends after 00:00 UTC spends the new day's DIEM and counts in the new
    EPOCH window, even on a key that expired at midnight."""
    before_midnight = datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC)
    sb = sandbox_with(1000.0, now=before_midnight)  # ~1 s
    with TestClient(sb.app) as c:
        data = new_key(c, consumptionLimit={"diem": 1}, expiresAt="2026-03-11T00:00:00Z")
        result: dict[str, Any] = {}

        def call() -> None:
            with TestClient(sb.app) as other:
                result["r"] = other.post(
                    "/api/v1/chat/completions", json=chat_body(), headers=bearer(data["apiKey"])
                )

        runner = threading.Thread(target=call)
        runner.start()
        wait_admitted(sb, data["id"])
        sb.clock.set(datetime(2026, 3, 11, 0, 0, 1, tzinfo=UTC))
        runner.join(timeout=30)
        assert result["r"].status_code == 200
        cost = Decimal(str(result["r"].json()["cost"]["diem"]))
        # The new day's allocation paid for it.
        assert diem_balance(c) == 100 - cost
        # The key is gone (expired) but its call was billed.
        key = ledger_key(sb, data["id"])
        assert key.period_spent("DIEM", sb.clock.now()) == cost
        again = c.post("/api/v1/chat/completions", json=chat_body(), headers=bearer(data["apiKey"]))
        assert again.status_code == 401


def test_stream_is_billed_at_its_end_before_the_final_usage_chunk() -> None:
    sb = sandbox_with(SLOW)
    with TestClient(sb.app) as c:
        secret = new_key(c)["apiKey"]
        started = time.monotonic()
        response = c.post(
            "/api/v1/chat/completions", json=chat_body(stream=True), headers=bearer(secret)
        )
        elapsed = time.monotonic() - started
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        final = json.loads(events[-2])
        tokens = final["usage"]["total_tokens"]
        assert elapsed >= run_seconds(tokens, SLOW)
        assert diem_balance(c) == 100 - Decimal(str(final["cost"]["diem"]))


def test_drop_fault_still_runs_and_bills_a_metered_call() -> None:
    sb = sandbox_with(SLOW)
    with TestClient(sb.app) as c:
        secret = new_key(c)["apiKey"]
        sb.faults.add({"drop": True, "path": "/api/v1/chat/completions"})
        with pytest.raises(httpx.TransportError):
            c.post("/api/v1/chat/completions", json=chat_body(), headers=bearer(secret))
        assert diem_balance(c) < 100
