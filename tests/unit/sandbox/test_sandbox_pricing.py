"""Where the money is: long-context (extended) pricing and the context window.

Each test sends the call an attacker would send and checks what the sandbox bills.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from starlette.testclient import TestClient
from tests.unit.sandbox.sandbox_helpers import ADMIN, bearer, prompt_of

from cheaptokens.sandbox.catalogue import find_model

KeyMaker = Callable[..., dict[str, Any]]
MILLION = Decimal(1_000_000)
#: gemini-3-1-pro-preview: base 2.5/15 per 1M, extended 5/22.5 above 200,000 input tokens.
GEMINI = "gemini-3-1-pro-preview"


def diem(client: TestClient) -> Decimal:
    return Decimal(
        str(client.get("/api/v1/billing/balance", headers=ADMIN).json()["balances"]["diem"])
    )


def call(client: TestClient, secret: str, model: str, tokens: int, **extra: Any) -> Any:
    body = {"model": model, "messages": prompt_of(tokens), **extra}
    return client.post("/api/v1/chat/completions", json=body, headers=bearer(secret))


def test_prompt_helper_counts_exactly(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    assert call(client, secret, GEMINI, 1000).json()["usage"]["prompt_tokens"] == 1000


def test_extended_rates_apply_to_the_whole_request_above_the_threshold(
    client: TestClient, make_key: KeyMaker
) -> None:
    secret = make_key()["apiKey"]
    at = call(client, secret, GEMINI, 200_000).json()
    above = call(client, secret, GEMINI, 200_001).json()
    assert at["usage"]["prompt_tokens"] == 200_000
    assert above["usage"]["prompt_tokens"] == 200_001
    base = (200_000 * Decimal("2.5") + at["usage"]["completion_tokens"] * Decimal(15)) / MILLION
    extended = (
        200_001 * Decimal(5) + above["usage"]["completion_tokens"] * Decimal("22.5")
    ) / MILLION
    assert Decimal(str(at["cost"]["diem"])) == base
    assert Decimal(str(above["cost"]["diem"])) == extended
    # One token more roughly doubles the bill: the extended rates cover the whole request.
    assert Decimal(str(above["cost"]["diem"])) > Decimal("1.9") * Decimal(str(at["cost"]["diem"]))
    assert diem(client) == Decimal(100) - base - extended


def test_a_400k_call_to_the_dearest_model_costs_what_the_catalogue_says(
    client: TestClient, make_key: KeyMaker
) -> None:
    """The attack of the report: a $1 key, one 400,000-token prompt to openai-gpt-54-pro
    (37.5/225 per 1M, extended 75/337.5 above 272,000). Admitted under the cap, billed after:
    the key ends 30 DIEM past a 1 DIEM cap."""
    data = make_key(consumptionLimit={"diem": 1, "usd": 0})
    response = call(client, data["apiKey"], "openai-gpt-54-pro", 400_000)
    assert response.status_code == 200
    body = response.json()
    expected = (
        400_000 * Decimal(75) + body["usage"]["completion_tokens"] * Decimal("337.5")
    ) / MILLION
    assert Decimal(str(body["cost"]["diem"])) == expected > 30
    got = client.get(f"/api/v1/api_keys/{data['id']}", headers=ADMIN).json()["data"]
    assert Decimal(got["currentPeriodUsage"]["diem"]) == expected.quantize(Decimal("0.0001"))
    assert diem(client) == Decimal(100) - expected
    again = call(client, data["apiKey"], "openai-gpt-54-pro", 10)
    assert again.status_code == 402 and "DIEM spend limit exceeded" in again.json()["error"]


def test_prompt_over_the_context_window_is_refused_and_not_billed(
    client: TestClient, make_key: KeyMaker
) -> None:
    model = find_model("llama-3.2-3b")
    assert model is not None and model.context == 128_000
    secret = make_key()["apiKey"]
    over = call(client, secret, "llama-3.2-3b", 128_001)
    assert over.status_code == 400
    error = over.json()["error"]
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error",
        "messages",
        "context_length_exceeded",
    )
    assert "128000" in error["message"]
    assert diem(client) == 100
    full = call(client, secret, "llama-3.2-3b", 128_000).json()
    assert full["usage"]["completion_tokens"] == 0
    assert full["choices"][0]["finish_reason"] == "length"
    assert Decimal(str(full["cost"]["diem"])) == 128_000 * Decimal("0.15") / MILLION


def test_completion_is_cut_at_the_context_window(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    body = call(client, secret, "llama-3.2-3b", 127_998, max_tokens=50).json()
    assert body["usage"]["completion_tokens"] == 2
    assert body["usage"]["total_tokens"] == 128_000
    assert body["choices"][0]["finish_reason"] == "length"
