"""Stripe Checkout end to end through the shop: the official SDK against the Checkout fake
(backed by localstripe), webhooks signed locally the way Stripe signs them."""

from __future__ import annotations

import json
import time

import pytest

from cheaptokens.payments import sign_webhook
from cheaptokens.payments.stripe_checkout import StripePayments, make_stripe_client
from support.shopkit import make_kit
from support.stripe_fakes import stripe_event
from support.stripe_fakes.localstripe import TEST_API_KEY

WHSEC = "whsec_test_FAKE_shop_not_real"


@pytest.fixture
def stripe_kit(tmp_path, fake_stripe):
    client = make_stripe_client(TEST_API_KEY, api_base=fake_stripe.base_url, max_network_retries=0)
    provider = StripePayments(client, WHSEC)
    with make_kit(tmp_path, payments=provider) as kit:
        yield kit, fake_stripe


def deliver(kit, body: bytes, *, secret: str = WHSEC, ts: int | None = None):
    header = sign_webhook(body, secret, ts or int(time.time()))
    return kit.web.post(
        "/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


def completed_event(fake, order, *, event_id="evt_test_completed_1") -> bytes:
    session_id = order["checkout_url"].rstrip("/").split("/")[-1]
    session = fake.mark_paid(session_id)
    return stripe_event(
        "checkout.session.completed", session, created=int(time.time()), event_id=event_id
    )


def test_checkout_session_carries_the_order(stripe_kit):
    kit, fake = stripe_kit
    order = kit.web.post("/api/orders", json={"credit_cents": 500}).json()
    session = next(iter(fake.sessions.values()))
    assert session["mode"] == "payment"
    assert session["amount_total"] == order["price_cents"]
    assert session["metadata"]["order_id"] == order["order_id"]
    assert order["checkout_url"] == session["url"]


def test_webhook_pays_once_even_when_duplicated(stripe_kit):
    kit, fake = stripe_kit
    order = kit.web.post("/api/orders", json={"credit_cents": 500}).json()
    body = completed_event(fake, order)
    assert deliver(kit, body).status_code == 200
    assert deliver(kit, body).status_code == 200  # Stripe redelivers
    kit.worker.drain()
    assert kit.status(order)["status"] == "fulfilled"
    keys = [
        k
        for k in kit.shop.gateways["sandbox-1"].list_keys()
        if k.description == f"cheaptokens:{order['order_id']}"
    ]
    assert len(keys) == 1
    assert kit.web.get("/api/supply").json()["sold_cents"] == 500


def test_forged_webhooks_change_nothing(stripe_kit):
    kit, fake = stripe_kit
    order = kit.web.post("/api/orders", json={"credit_cents": 500}).json()
    body = completed_event(fake, order)
    wrong = deliver(kit, body, secret="whsec_attacker_guess")
    assert wrong.status_code == 400
    tampered = json.loads(body)
    tampered["data"]["object"]["amount_total"] = 1
    sig = sign_webhook(body, WHSEC, int(time.time()))
    r = kit.web.post(
        "/webhooks/stripe", content=json.dumps(tampered).encode(), headers={"Stripe-Signature": sig}
    )
    assert r.status_code == 400
    stale = deliver(kit, body, ts=int(time.time()) - 3600)
    assert stale.status_code == 400
    unsigned = kit.web.post("/webhooks/stripe", content=body)
    assert unsigned.status_code == 400
    kit.worker.drain()
    assert kit.status(order)["status"] == "awaiting_payment"
    assert kit.web.get("/api/supply").json()["sold_cents"] == 0


def test_refund_goes_through_stripe(stripe_kit):
    kit, fake = stripe_kit
    order = kit.web.post("/api/orders", json={"credit_cents": 500}).json()
    assert deliver(kit, completed_event(fake, order)).status_code == 200
    kit.worker.drain()
    from support.shopkit import request_refund

    request_refund(kit.shop, order["order_id"])
    kit.worker.drain()
    body = kit.status(order)
    assert body["status"] == "refunded"
    refunds = [r for r in fake.requests if r.path.startswith("/v1/refunds")]
    assert len(refunds) == 1
    assert not [
        k
        for k in kit.shop.gateways["sandbox-1"].list_keys()
        if k.description == f"cheaptokens:{order['order_id']}"
    ]
