"""A webhook with the one-call purchase: ``webhook_url`` in ``POST /api/buy``, checked like
``POST /api/orders``' (also on the unpaid call), its signing secret in the paid answer only,
and ``key.ready`` delivered signed to it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from cheaptokens import inventory
from cheaptokens.models import OrderWebhook
from support.agents import agent_post, fund, new_wallet, required_of, sign
from support.receiver import receiver
from support.shopkit import Kit, make_kit

from .conftest import live_keys, money_in


def buy_body(url: str | None, credit_cents: int = 500) -> dict[str, Any]:
    body: dict[str, Any] = {"credit_cents": credit_cents}
    if url is not None:
        body["webhook_url"] = url
    return body


def webhooks(kit: Kit) -> int:
    with kit.shop.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(OrderWebhook)) or 0)


def test_an_agent_buys_with_a_webhook_and_key_ready_arrives_signed(kit: Kit) -> None:
    wallet = new_wallet()
    fund(kit.sandbox, wallet.address, "25.00")
    with receiver() as rec:
        r = agent_post(kit, wallet, "/api/buy", buy_body(rec.url))
        assert r.status_code == 200, r.text
        bought = r.json()
        secret = bought["webhook_secret"]
        assert secret.startswith("whsec_") and bought["webhook_url"] == rec.url
        assert kit.worker.deliveries is not None
        assert kit.worker.deliveries.send_due() == 1
        [got] = rec.wait_for(1)
    event = Webhook(secret).verify(got.body, got.headers)
    assert event["type"] == "key.ready"
    assert event["data"]["order_id"] == bought["order_id"]
    assert event["data"]["key_last6"] == bought["key"]["api_key"][-6:]
    assert bought["key"]["api_key"] not in got.body.decode()  # never the key itself
    auth = {"Authorization": f"Bearer {bought['order_token']}"}
    status = kit.web.get(f"/api/orders/{bought['order_id']}", headers=auth).json()
    assert status["webhook_url"] == rec.url and "whsec_" not in str(status)
    log = kit.web.get(f"/api/orders/{bought['order_id']}/deliveries", headers=auth).json()
    assert "whsec_" not in str(log) and log["events"][0]["status"] == "delivered"


def test_the_unpaid_call_makes_no_webhook_and_a_replayed_payment_no_second_secret(
    kit: Kit,
) -> None:
    wallet = new_wallet()
    fund(kit.sandbox, wallet.address, "25.00")
    body = buy_body("http://127.0.0.1:9/hook")
    first = kit.web.post("/api/buy", json=body)
    assert first.status_code == 402, first.text
    assert "webhook_secret" not in first.text and webhooks(kit) == 0
    header = sign(wallet, dict(required_of(first)["accepts"][0]))
    paid = kit.web.post("/api/buy", json=body, headers={"PAYMENT-SIGNATURE": header})
    assert paid.status_code == 200, paid.text
    secret = paid.json()["webhook_secret"]
    assert secret.startswith("whsec_") and webhooks(kit) == 1
    with kit.shop.db.read() as s:
        sealed = s.scalars(select(OrderWebhook.secret)).one()
    for url in ("http://127.0.0.1:9/hook", "http://127.0.0.1:10/other"):
        again = kit.web.post("/api/buy", json=buy_body(url), headers={"PAYMENT-SIGNATURE": header})
        assert again.status_code == 402, again.text
        # The quote was used: a price that moved may be named first; never a second order.
        assert again.json()["reason"] in ("payment_replayed", "price_changed")
        assert "whsec_" not in again.text and "webhook_secret" not in again.text
    with kit.shop.db.read() as s:  # the secret the buyer holds is still the one in force
        assert s.scalars(select(OrderWebhook.secret)).one() == sealed
    assert webhooks(kit) == 1 and live_keys(kit) == 1


def test_without_a_webhook_the_answer_has_no_secret(kit: Kit) -> None:
    wallet = new_wallet()
    fund(kit.sandbox, wallet.address, "25.00")
    r = agent_post(kit, wallet, "/api/buy", buy_body(None))
    assert r.status_code == 200, r.text
    assert r.json()["webhook_secret"] is None and r.json()["webhook_url"] is None
    assert webhooks(kit) == 0


def test_the_shop_itself_is_refused_before_anything_is_reserved(kit: Kit) -> None:
    r = kit.web.post("/api/buy", json=buy_body("http://testserver/api/orders"))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == "webhook_url"
    with kit.shop.db.read() as s:
        assert inventory.supply(s, day=kit.now().date()).reserved_cents == 0


@pytest.mark.parametrize(
    "url",
    ["https://127.0.0.1/hook", "https://169.254.169.254/latest/", "https://[::1]/hook"],
)
def test_live_mode_refuses_private_addresses_paid_or_not_and_charges_nothing(
    tmp_path: Any, url: str
) -> None:
    with make_kit(tmp_path, venice_mode="live") as kit:
        wallet = new_wallet()
        fund(kit.sandbox, wallet.address, "25.00")
        unpaid = kit.web.post("/api/buy", json=buy_body(url))
        assert unpaid.status_code == 400, unpaid.text
        assert unpaid.json()["error"]["field"] == "webhook_url"
        # A payment signed for an honest offer, sent with a private URL: refused, not charged.
        offer = kit.web.post("/api/buy", json=buy_body(None))
        header = sign(wallet, dict(required_of(offer)["accepts"][0]))
        paid = kit.web.post("/api/buy", json=buy_body(url), headers={"PAYMENT-SIGNATURE": header})
        assert paid.status_code == 400, paid.text
        assert paid.json()["error"]["field"] == "webhook_url"
        assert money_in(kit) == 0 and live_keys(kit) == 0 and webhooks(kit) == 0
        # The same authorization still buys, with a public receiver or none.
        ok = kit.web.post("/api/buy", json=buy_body(None), headers={"PAYMENT-SIGNATURE": header})
        assert ok.status_code == 200, ok.text


def test_the_openapi_shows_the_field_and_the_secret(kit: Kit) -> None:
    schemas = kit.web.get("/openapi.json").json()["components"]["schemas"]
    assert "webhook_url" in schemas["BuyIn"]["properties"]
    assert {"webhook_url", "webhook_secret"} <= set(schemas["BuyOut"]["properties"])
