"""The text-model catalogue and the dearest single call (cheaptokens.venice.catalogue).

The figures are checked against the catalogue the sandbox ships (read here, in the test
only: the shop never imports the sandbox) as ``GET /models?type=text`` serves it, and
against what the sandbox actually bills for the same tokens.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

import pytest
from starlette.testclient import TestClient

from cheaptokens.sandbox import AccountSpec, Sandbox
from cheaptokens.venice.catalogue import (
    ExtendedPricing,
    TextModel,
    call_cost,
    parse_text_models,
    worst_call,
    worst_call_for,
)

ADMIN_KEY = "VENICE_ADMIN_KEY_sandbox_0000"


@cache
def shipped_body() -> Any:
    """``GET /models?type=text`` from the sandbox, parsed as the shop parses Venice's."""
    sb = Sandbox([AccountSpec(ADMIN_KEY, diem=Decimal(0))])
    with TestClient(sb.app) as c:
        raw = c.get("/api/v1/models?type=text").content
    return json.loads(raw, parse_float=Decimal)


def shipped() -> list[TextModel]:
    return parse_text_models(shipped_body())


def by_id(model_id: str) -> TextModel:
    return next(m for m in shipped() if m.id == model_id)


def test_the_test_reads_the_shipped_file() -> None:
    text = resources.files("cheaptokens.sandbox").joinpath("models.json").read_text()
    ids = {e["id"] for e in json.loads(text) if e["type"] == "text"}
    assert ids == {m.id for m in shipped()}


def test_integer_prices_and_extended_pricing_are_parsed() -> None:
    dearest = by_id("openai-gpt-54-pro")
    # JSON "output": 225 is an int after parse_float=Decimal; it must not be lost.
    assert (dearest.input, dearest.output) == (Decimal("37.5"), Decimal(225))
    assert dearest.context == 1_000_000 and dearest.privacy == "anonymized"
    assert dearest.extended == ExtendedPricing(272_000, Decimal(75), Decimal("337.5"))
    assert by_id("zai-org-glm-5-1").extended is None
    assert all(m.input is not None and m.output is not None for m in shipped())
    assert all(m.max_completion is None for m in shipped())  # not in this catalogue


def test_max_completion_tokens_is_read_when_present() -> None:
    body = {
        "data": [
            {
                "id": "m",
                "model_spec": {
                    "availableContextTokens": 1000,
                    "maxCompletionTokens": 100,
                    "pricing": {"input": {"usd": 1}, "output": {"usd": 2}},
                },
            }
        ]
    }
    (model,) = parse_text_models(body)
    assert model.max_completion == 100
    worst = worst_call_for(model)
    assert worst is not None
    assert (worst.prompt_tokens, worst.completion_tokens) == (900, 100)
    assert worst.cost == (900 * 1 + 100 * 2) / Decimal(1_000_000)


def test_call_cost_uses_extended_rates_for_the_whole_request_above_the_threshold() -> None:
    model = by_id("openai-gpt-54-pro")
    assert call_cost(model, 272_000, 0) == Decimal("10.2")  # 272,000 x 37.5 / 1M
    assert call_cost(model, 272_001, 0) == Decimal("20.400075")  # all of it at 75 / 1M
    assert call_cost(model, 400_000, 1000) == Decimal("30.3375")


# -- the figures (written down in docs/sandbox.md and the report) ---------------------------


def test_worst_call_of_any_model_when_the_reply_may_fill_the_window() -> None:
    """No maxCompletionTokens in the catalogue: only the context window bounds the reply.
    The dearest call: openai-gpt-54-pro, 272,001 prompt tokens (just over the extended
    threshold) and 727,999 completion tokens at the extended 75 / 337.5 per 1M."""
    worst = worst_call(shipped())
    assert worst is not None
    assert worst.model_id == "openai-gpt-54-pro"
    assert (worst.prompt_tokens, worst.completion_tokens) == (272_001, 727_999)
    assert worst.extended is True
    assert worst.cost == Decimal("266.0997375")
    assert worst.unbounded == ()


def test_worst_private_call_when_the_reply_may_fill_the_window() -> None:
    worst = worst_call(shipped(), private_only=True)
    assert worst is not None
    assert (worst.model_id, worst.cost) == ("kimi-k3-fast-api", Decimal("22.5"))
    assert (worst.prompt_tokens, worst.completion_tokens, worst.extended) == (0, 1_000_000, False)


def test_worst_prompt_alone_is_75_dollars_not_37_50() -> None:
    """The report's "$37.50 of input" is 1M tokens at openai-gpt-54-pro's base 37.5/1M; above
    272,000 input tokens its extended 75/1M applies to the whole request, so a full-window
    prompt costs $75. $37.50 is openai-gpt-55-pro's (no extended tier)."""
    worst = worst_call(shipped(), max_completion_tokens=0)
    assert worst is not None
    assert (worst.model_id, worst.cost) == ("openai-gpt-54-pro", Decimal(75))
    assert (worst.prompt_tokens, worst.completion_tokens, worst.extended) == (1_000_000, 0, True)
    second = worst_call(
        [m for m in shipped() if m.id != "openai-gpt-54-pro"], max_completion_tokens=0
    )
    assert second is not None and (second.model_id, second.cost) == (
        "openai-gpt-55-pro",
        Decimal("37.5"),
    )


def test_worst_private_prompt_alone_is_grok_at_5_66_not_4_50() -> None:
    """The report's "$4.50" is kimi-k3-fast-api (1M x 4.5/1M); grok-4-20 has a 2M window and
    extended 2.83/1M above 200,000 tokens, so a full-window prompt costs $5.66."""
    worst = worst_call(shipped(), private_only=True, max_completion_tokens=0)
    assert worst is not None
    assert (worst.model_id, worst.cost) == ("grok-4-20", Decimal("5.66"))
    assert worst.prompt_tokens == 2_000_000
    kimi = worst_call_for(by_id("kimi-k3-fast-api"), max_completion_tokens=0)
    assert kimi is not None and kimi.cost == Decimal("4.5")


def test_an_assumed_reply_ceiling_moves_the_worst_call() -> None:
    worst = worst_call(shipped(), max_completion_tokens=128_000)
    assert worst is not None and worst.model_id == "openai-gpt-54-pro"
    assert (worst.prompt_tokens, worst.completion_tokens) == (872_000, 128_000)
    assert worst.cost == call_cost(by_id("openai-gpt-54-pro"), 872_000, 128_000)
    assert worst.cost == Decimal("108.6")  # 872,000 x 75 + 128,000 x 337.5, per 1M


def test_worst_call_is_a_true_maximum_over_a_grid_of_calls() -> None:
    """Brute force on a coarse grid (and around the threshold) never beats the result."""
    for model in shipped():
        worst = worst_call_for(model)
        assert worst is not None and model.context is not None
        points = {0, model.context}
        if model.extended is not None:
            points |= {model.extended.threshold, model.extended.threshold + 1}
        points |= {model.context * k // 20 for k in range(21)}
        for prompt in points:
            if prompt <= model.context:
                assert call_cost(model, prompt, model.context - prompt) <= worst.cost
        assert worst.prompt_tokens + worst.completion_tokens <= model.context


def test_models_that_cannot_be_bounded_are_named() -> None:
    free = TextModel("a-free", "A", 1000, Decimal(0), Decimal(0), "private")
    blind = TextModel("b-blind", "B", None, Decimal(1), Decimal(1), "private")
    unpriced = TextModel("c-unpriced", "C", 1000, None, Decimal(1), "anonymized")
    worst = worst_call([blind, free, unpriced])
    assert worst is not None and worst.model_id == "a-free" and worst.cost == 0
    assert worst.unbounded == ("b-blind", "c-unpriced")
    assert worst_call([blind]) is None
    assert worst_call([]) is None
    with pytest.raises(ValueError, match="no prices"):
        call_cost(unpriced, 1, 1)


@pytest.mark.parametrize(
    ("model_id", "prompt"),
    [("openai-gpt-54-pro", 272_000), ("openai-gpt-54-pro", 272_001), ("grok-4-20", 200_001)],
)
def test_the_sandbox_bills_what_call_cost_says(model_id: str, prompt: int) -> None:
    sb = Sandbox([AccountSpec(ADMIN_KEY, diem=Decimal(1000))], seconds_per_million_tokens=0)
    with TestClient(sb.app) as c:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        secret = c.post(
            "/api/v1/api_keys", headers=admin, json={"apiKeyType": "INFERENCE", "description": "x"}
        ).json()["data"]["apiKey"]
        body = {"model": model_id, "messages": [{"role": "user", "content": "x " * (prompt - 4)}]}
        answer = c.post(
            "/api/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"}
        ).json()
    usage = answer["usage"]
    assert usage["prompt_tokens"] == prompt
    expected = call_cost(by_id(model_id), prompt, usage["completion_tokens"])
    assert Decimal(str(answer["cost"]["diem"])) == expected.quantize(Decimal("1E-8"))
