"""Balances that go negative (docs/venice-facts.md §2.3, §4.2, §6 "Overshoot").

A call is billed after it ran, so one big call can take the account's DIEM (or USD) below
zero and a key's ``currentPeriodUsage`` above its cap. Every view shows the negative number,
and the next call is refused at admission with Venice's exact 402.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.testclient import TestClient
from tests.unit.sandbox.sandbox_helpers import ADMIN, ADMIN_KEY, START, bearer, prompt_of

from cheaptokens.sandbox import AccountSpec, Sandbox
from cheaptokens.sandbox.catalogue import count_prompt_tokens, find_model, generate_reply
from cheaptokens.sandbox.render import decimal_text

INSUFFICIENT = (
    "Insufficient USD or Diem balance to complete request. "
    "Visit https://venice.ai/settings/api to add credits."
)
DEAREST = "openai-gpt-54-pro"
SMALL: dict[str, Any] = {
    "model": "zai-org-glm-5-1",
    "messages": [{"role": "user", "content": "hi"}],
}


def sandbox(diem: str, usd: str = "0") -> Sandbox:
    return Sandbox(
        [AccountSpec(ADMIN_KEY, diem=Decimal(diem), usd=Decimal(usd))],
        now=START,
        seconds_per_million_tokens=0,
    )


def new_key(c: TestClient, **fields: Any) -> dict[str, Any]:
    body = {"apiKeyType": "INFERENCE", "description": "x", **fields}
    data: dict[str, Any] = c.post("/api/v1/api_keys", json=body, headers=ADMIN).json()["data"]
    return data


def big_call(c: TestClient, secret: str, tokens: int = 400_000) -> Decimal:
    body = {"model": DEAREST, "messages": prompt_of(tokens)}
    response = c.post("/api/v1/chat/completions", json=body, headers=bearer(secret))
    assert response.status_code == 200, response.text
    cost = response.json()["cost"]
    return Decimal(str(cost["diem"])) + Decimal(str(cost["usd"]))


def test_one_call_takes_diem_negative_and_every_view_shows_it() -> None:
    sb = sandbox("10")
    with TestClient(sb.app) as c:
        capped = new_key(c, consumptionLimit={"diem": 1, "usd": 0})
        cost = big_call(c, capped["apiKey"])
        assert cost > 30  # 400,000 tokens at the extended 75/1M, plus the reply
        debt = Decimal(10) - cost
        assert debt < -20

        balance = c.get("/api/v1/billing/balance", headers=ADMIN)
        assert balance.json() == {
            "canConsume": False,
            "consumptionCurrency": None,
            "balances": {"diem": float(debt), "usd": 0},
            "diemEpochAllocation": 10,
        }
        assert Decimal(str(balance.json()["balances"]["diem"])) == debt  # exact, not rounded
        assert balance.headers["x-venice-balance-diem"] == decimal_text(debt)
        assert balance.headers["x-venice-balance-diem"].startswith("-2")
        assert "E" not in balance.headers["x-venice-balance-diem"]

        listed = c.get("/api/v1/api_keys", headers=ADMIN).json()["data"]
        key = next(k for k in listed if k["id"] == capped["id"])
        assert key["consumptionLimits"]["diem"] == 1
        assert Decimal(key["currentPeriodUsage"]["diem"]) == cost.quantize(Decimal("0.0001"))
        assert Decimal(key["usage"]["trailingSevenDays"]["diem"]) > 30

        rate = c.get("/api/v1/api_keys/rate_limits", headers=bearer(capped["apiKey"]))
        assert rate.json()["data"]["accessPermitted"] is False
        assert Decimal(str(rate.json()["data"]["balances"]["DIEM"])) == debt

        # Every key of the account is refused at admission now, capped or not.
        uncapped = new_key(c)
        for secret in (capped["apiKey"], uncapped["apiKey"]):
            refused = c.post("/api/v1/chat/completions", json=SMALL, headers=bearer(secret))
            assert (refused.status_code, refused.json()) == (402, {"error": INSUFFICIENT})
            assert refused.headers["x-venice-balance-diem"] == decimal_text(debt)
        assert (
            Decimal(str(c.get("/api/v1/billing/balance", headers=ADMIN).json()["balances"]["diem"]))
            == debt
        )


def test_zero_diem_with_a_zero_usd_cap_is_refused_even_with_usd_in_the_account() -> None:
    sb = sandbox("0", usd="50")
    with TestClient(sb.app) as c:
        no_usd = new_key(c, consumptionLimit={"usd": 0})
        refused = c.post("/api/v1/chat/completions", json=SMALL, headers=bearer(no_usd["apiKey"]))
        assert (refused.status_code, refused.json()) == (402, {"error": INSUFFICIENT})
        assert c.get("/api/v1/billing/balance", headers=ADMIN).json()["balances"]["usd"] == 50


def test_after_diem_goes_negative_a_key_allowed_usd_spends_usd_and_takes_it_negative() -> None:
    sb = sandbox("1", usd="5")
    with TestClient(sb.app) as c:
        key = new_key(c)  # no cap: DIEM first, then USD
        first = c.post(
            "/api/v1/chat/completions",
            json={"model": DEAREST, "messages": prompt_of(400_000)},
            headers=bearer(key["apiKey"]),
        ).json()["cost"]
        assert first["usd"] == 0 and Decimal(str(first["diem"])) > 30  # all on DIEM
        second = c.post(
            "/api/v1/chat/completions",
            json={"model": DEAREST, "messages": prompt_of(400_000)},
            headers=bearer(key["apiKey"]),
        ).json()["cost"]
        assert second["diem"] == 0 and Decimal(str(second["usd"])) > 30  # all on USD
        body = c.get("/api/v1/billing/balance", headers=ADMIN).json()
        assert Decimal(str(body["balances"]["diem"])) == 1 - Decimal(str(first["diem"]))
        assert Decimal(str(body["balances"]["usd"])) == 5 - Decimal(str(second["usd"]))
        assert body["canConsume"] is False
        refused = c.post("/api/v1/chat/completions", json=SMALL, headers=bearer(key["apiKey"]))
        assert (refused.status_code, refused.json()) == (402, {"error": INSUFFICIENT})


def test_midnight_refills_a_negative_diem_to_the_allocation() -> None:
    """Sandbox reading (docs/sandbox.md): the new epoch starts at the full allocation; a
    debt from the day before is not carried."""
    sb = sandbox("10")
    with TestClient(sb.app) as c:
        key = new_key(c, consumptionLimit={"diem": 1, "usd": 0})
        big_call(c, key["apiKey"])
        sb.clock.set(datetime(2026, 3, 11, tzinfo=UTC))
        body = c.get("/api/v1/billing/balance", headers=ADMIN).json()
        assert body["balances"]["diem"] == 10 and body["canConsume"] is True
        got = c.get(f"/api/v1/api_keys/{key['id']}", headers=ADMIN).json()["data"]
        assert got["currentPeriodUsage"]["diem"] == "0.0000"
        ok = c.post("/api/v1/chat/completions", json=SMALL, headers=bearer(key["apiKey"]))
        assert ok.status_code == 200


def test_balance_headers_never_use_exponent_form() -> None:
    model = find_model("zai-org-glm-5-1")
    assert model is not None
    messages = SMALL["messages"]
    exact = model.cost(
        count_prompt_tokens(messages), len(generate_reply(model.id, messages, None)[0])
    )
    sb = sandbox(str(exact))  # one call spends the day's DIEM to the last 1E-8
    with TestClient(sb.app) as c:
        key = new_key(c)
        assert c.post("/api/v1/chat/completions", json=SMALL, headers=bearer(key["apiKey"]))
        headers = c.get("/api/v1/billing/balance", headers=ADMIN).headers
        assert headers["x-venice-balance-diem"] == "0"  # not "0E-8"
        assert headers["x-venice-balance-usd"] == "0"
    assert decimal_text(Decimal("-20.00123400")) == "-20.001234"
