"""Agents can find x402 buying: /llms.txt, /SKILL.md, /docs/agents and the OpenAPI schema."""

from __future__ import annotations

from cheaptokens.errors import (
    Conflict,
    HeldOut,
    HoldLimit,
    InvalidInput,
    NotFound,
    RateLimited,
    Refused,
    ServiceUnavailable,
    SoldOut,
)
from cheaptokens.orders import standing
from cheaptokens.orders import x402 as x402flow
from cheaptokens.orders.wallets import SignInReplayed
from cheaptokens.web.api import SignInInvalid
from support.shopkit import make_kit

#: x402's long codes as SKILL.md's table shortens them ("…valid_before")
SHORTENED = ("invalid_exact_evm_payload_authorization_", "invalid_exact_evm_payload_")


def test_agents_find_how_to_buy_and_every_error(tmp_path):
    with make_kit(tmp_path) as kit:
        llms = kit.web.get("/llms.txt")
        assert llms.status_code == 200 and llms.headers["content-type"].startswith("text/plain")
        assert "/api/buy" in llms.text and "/SKILL.md" in llms.text
        assert "/api/standing-orders" in llms.text
        skill = kit.web.get("/SKILL.md")
        assert skill.status_code == 200 and skill.text.startswith("---\nname:")
        for needle in (
            "PAYMENT-SIGNATURE",
            "SIGN-IN-WITH-X",
            "/api/supply",
            "payment_replayed",
            "price_changed",
            kit.shop.settings.x402_network,
            "/reissue",
            "/api/standing-orders",
            "max_price_per_dollar_cents",
            "min_discount_percent",
            "standing_token",
            "authorization_too_short",
            "too_many_waiting",
            "Refunds arrive as USDC to the wallet that paid",
        ):
            assert needle in skill.text, needle
        page = kit.web.get("/docs/agents", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "x402" in page.text
        assert "/api/standing-orders" in page.text
        assert "as USDC to the wallet that paid" in page.text
        assert "arrive as USDC to the wallet that paid" in llms.text
        assert 'href="/docs/agents"' in kit.web.get("/docs/").text
        paths = kit.web.get("/openapi.json").json()["paths"]
        buy = paths["/api/buy"]["post"]["responses"]
        assert {"200", "202", "402", "400", "403", "409", "422", "429", "503"} <= set(buy)
        for path in (
            "/api/wallet/orders",
            "/api/wallet/orders/{order_id}",
            "/api/wallet/standing-orders",
        ):
            assert {"200", "401", "402", "404"} <= set(paths[path]["get"]["responses"])
        reissue = paths["/api/wallet/orders/{order_id}/reissue"]["post"]["responses"]
        assert {"202", "400", "401", "402", "429"} <= set(reissue)
        create = paths["/api/standing-orders"]["post"]["responses"]
        assert {"201", "400", "402", "422", "429", "503"} <= set(create)
        one = paths["/api/standing-orders/{standing_id}"]
        assert {"200", "404"} <= set(one["get"]["responses"])
        assert {"200", "404", "409"} <= set(one["delete"]["responses"])


def _documented(code: str, text: str) -> bool:
    if f"`{code}`" in text:
        return True
    return any(code.startswith(p) and f"`…{code.removeprefix(p)}`" in text for p in SHORTENED)


#: The errors the agent routes (/api/buy, /api/wallet/*, /api/standing-orders) answer with.
AGENT_ERRORS = (
    InvalidInput,
    Refused,
    NotFound,
    Conflict,
    SoldOut,
    HeldOut,
    RateLimited,
    HoldLimit,
    ServiceUnavailable,
    SignInInvalid,
    SignInReplayed,
)


def test_skill_md_says_what_each_refusal_means(tmp_path):
    """Every reason the agent routes put in a 402 (the shop's and x402's), and every error code
    they answer with, has a row in SKILL.md's table."""
    codes = {*x402flow.REASONS, *standing.REASONS, *(e.code for e in AGENT_ERRORS)}
    with make_kit(tmp_path) as kit:
        skill = kit.web.get("/SKILL.md").text
    table = skill[skill.index("## 6. What each answer means") :]
    assert sorted(c for c in codes if not _documented(c, table)) == []
