"""One-call purchases with x402: the SDK's httpx client and a throw-away wallet buy a key."""

from __future__ import annotations

import time
from decimal import Decimal

import openai
import pytest

from support.agents import agent_post, balance, fund, new_wallet
from support.shopkit import make_kit


@pytest.fixture
def kit(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url) as k:
        yield k


def test_an_agent_buys_a_key_in_one_call_and_uses_it(kit):
    wallet = new_wallet()
    fund(kit.sandbox, wallet.address, "25.00")
    r = agent_post(kit, wallet, "/api/buy", {"credit_cents": 500})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "fulfilled"
    assert body["credit_cents"] == 500
    assert body["key"]["credit_cents"] == 500
    assert "PAYMENT-RESPONSE" in r.headers
    paid = Decimal(body["price_cents"]) / 100
    assert balance(kit.sandbox, wallet.address) == Decimal("25.00") - paid
    key = body["key"]
    client = openai.OpenAI(
        api_key=key["api_key"], base_url=key["base_url"], http_client=kit.venice_http
    )
    chat = client.chat.completions.create(
        model="llama-3.3-70b", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.usage.completion_tokens > 0


def test_the_app_asks_the_facilitator_for_supported_at_start_not_at_the_first_sale(kit):
    from fastapi.testclient import TestClient

    from cheaptokens.web.app import create_app

    assert not kit.shop.x402.ready
    with TestClient(create_app(kit.shop)):
        deadline = time.monotonic() + 10
        while not kit.shop.x402.ready and time.monotonic() < deadline:
            time.sleep(0.02)
        assert kit.shop.x402.ready


def test_a_facilitator_down_at_start_is_asked_again_by_the_first_sale(kit):
    kit.sandbox.faults.add({"path": "/x402/supported", "status": 500, "count": 1})
    assert kit.shop.x402.warm() is False and not kit.shop.x402.ready
    wallet = new_wallet()
    fund(kit.sandbox, wallet.address, "25.00")
    r = agent_post(kit, wallet, "/api/buy", {"credit_cents": 500})
    assert r.status_code == 200, r.text
    assert kit.shop.x402.ready
