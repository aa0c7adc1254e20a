"""Refunds straight against localstripe (no fake in between) through the official SDK."""

from __future__ import annotations

import contextlib

import pytest
import stripe

from cheaptokens.payments import RefundFailed
from cheaptokens.payments.stripe_checkout import StripePayments, make_stripe_client
from support.stripe_fakes import LocalStripe
from support.stripe_fakes.localstripe import TEST_API_KEY

WEBHOOK_SECRET = "whsec_test_FAKE_cheaptokens_not_real"


def _payment_intent(client: stripe.StripeClient, *, card: str, amount: int = 1500) -> str:
    method = client.v1.payment_methods.create(
        {"type": "card", "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    intent = client.v1.payment_intents.create(
        {"amount": amount, "currency": "usd", "payment_method": method.id}
    )
    # a declined card raises CardError and leaves the intent in requires_payment_method
    with contextlib.suppress(stripe.CardError):
        client.v1.payment_intents.confirm(intent.id)
    return str(intent.id)


@pytest.fixture
def client(localstripe: LocalStripe) -> stripe.StripeClient:
    return make_stripe_client(TEST_API_KEY, api_base=localstripe.base_url, max_network_retries=0)


def test_partial_and_full_refund_of_a_payment_intent(client: stripe.StripeClient) -> None:
    provider = StripePayments(client, WEBHOOK_SECRET)
    intent = _payment_intent(client, card="4242424242424242")
    partial = provider.refund(payment_ref=intent, amount_cents=500, idempotency_key="a")
    rest = provider.refund(payment_ref=intent, amount_cents=1000, idempotency_key="b")
    assert (partial.amount_cents, rest.amount_cents) == (500, 1000)
    assert partial.reference != rest.reference
    stored = client.v1.refunds.retrieve(partial.reference)
    assert (stored.payment_intent, stored.amount) == (intent, 500)


def test_refund_of_a_declined_payment_fails(client: stripe.StripeClient) -> None:
    provider = StripePayments(client, WEBHOOK_SECRET)
    intent = _payment_intent(client, card="4000000000000341")
    assert client.v1.payment_intents.retrieve(intent).status == "requires_payment_method"
    with pytest.raises(RefundFailed) as caught:
        provider.refund(payment_ref=intent, amount_cents=100, idempotency_key="c")
    assert caught.value.http_status == 400
