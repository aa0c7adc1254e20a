"""StripePayments through the official SDK: Checkout Sessions on the fake, payments and refunds
on localstripe (the fake forwards non-Checkout calls to it)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import stripe

from cheaptokens.payments import (
    InvalidCheckout,
    PaymentProviderUnavailable,
    RefundFailed,
    sign_webhook,
)
from cheaptokens.payments.stripe_checkout import StripePayments, make_stripe_client
from support.stripe_fakes import FakeStripe, LocalStripe, stripe_event
from support.stripe_fakes.localstripe import TEST_API_KEY, free_port

WEBHOOK_SECRET = "whsec_test_FAKE_cheaptokens_not_real"


def _create(
    provider: StripePayments,
    *,
    order_id: str = "ord_1",
    amount: int = 2500,
    expires_at: datetime | None = None,
) -> str:
    checkout = provider.create_checkout(
        order_id=order_id,
        amount_cents=amount,
        currency="usd",
        description="$25 of Venice credit",
        success_url="https://shop.test/orders/ord_1/return",
        cancel_url="https://shop.test/orders/ord_1",
        expires_at=expires_at or datetime.now(UTC) + timedelta(hours=1),
    )
    assert checkout.provider == "stripe"
    assert checkout.checkout_url == f"https://checkout.stripe.com/c/pay/{checkout.reference}"
    return checkout.reference


def test_create_checkout_sends_stripes_documented_parameters(
    provider: StripePayments, fake_stripe: FakeStripe
) -> None:
    before = datetime.now(UTC)
    reference = _create(provider)
    assert reference.startswith("cs_test_")
    request = fake_stripe.requests[-1]
    assert (request.method, request.path) == ("POST", "/v1/checkout/sessions")
    assert request.idempotency_key and "ord_1" in request.idempotency_key
    params = request.params
    assert params["mode"] == "payment"
    assert params["line_items"] == [
        {
            "quantity": "1",
            "price_data": {
                "currency": "usd",
                "unit_amount": "2500",
                "product_data": {"name": "$25 of Venice credit"},
            },
        }
    ]
    assert params["metadata"] == {"order_id": "ord_1"}
    assert params["client_reference_id"] == "ord_1"
    assert params["success_url"].endswith("?session_id={CHECKOUT_SESSION_ID}")
    expires = int(params["expires_at"])
    assert before.timestamp() + 3500 <= expires <= before.timestamp() + 3700


def test_short_expiry_is_clamped_so_stripe_accepts_it(provider: StripePayments) -> None:
    checkout = provider.create_checkout(
        order_id="ord_short",
        amount_cents=100,
        currency="usd",
        description="x",
        success_url="https://shop.test/ok",
        cancel_url="https://shop.test/no",
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    assert checkout.expires_at >= datetime.now(UTC) + timedelta(minutes=30)


def test_retrying_the_same_checkout_returns_the_same_session(provider: StripePayments) -> None:
    # One expiry, as an order keeps its own: read from the clock at each call it crosses a
    # second now and then, and other parameters make another session.
    expires = datetime.now(UTC) + timedelta(hours=1)
    assert _create(provider, expires_at=expires) == _create(provider, expires_at=expires)
    assert _create(provider, amount=2600, expires_at=expires) != _create(
        provider, expires_at=expires
    )


def test_other_currency_is_refused(provider: StripePayments) -> None:
    with pytest.raises(InvalidCheckout):
        provider.create_checkout(
            order_id="o",
            amount_cents=100,
            currency="eur",
            description="x",
            success_url="https://s/ok",
            cancel_url="https://s/no",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )


def test_confirm_follows_the_session(provider: StripePayments, fake_stripe: FakeStripe) -> None:
    reference = _create(provider)
    assert provider.confirm(reference=reference) is None
    fake_stripe.mark_paid(reference)
    paid = provider.confirm(reference=reference)
    assert paid is not None
    assert (paid.kind, paid.order_id, paid.amount_cents) == ("paid", "ord_1", 2500)
    assert paid.payment_ref is not None and paid.payment_ref.startswith("pi_")
    again = provider.confirm(reference=reference)
    assert again is not None
    assert again.event_id == paid.event_id  # repeated confirms dedupe
    assert dataclasses.replace(again, occurred_at=paid.occurred_at) == paid


def test_confirm_of_an_expired_session(provider: StripePayments, fake_stripe: FakeStripe) -> None:
    reference = _create(provider)
    fake_stripe.mark_expired(reference)
    event = provider.confirm(reference=reference)
    assert event is not None and event.kind == "expired"


def test_confirm_of_an_unknown_session_is_invalid(provider: StripePayments) -> None:
    with pytest.raises(InvalidCheckout) as caught:
        provider.confirm(reference="cs_test_nope")
    assert caught.value.http_status == 404


def test_pay_webhook_then_refund_on_localstripe(
    provider: StripePayments, fake_stripe: FakeStripe, localstripe: LocalStripe
) -> None:
    reference = _create(provider)
    session = fake_stripe.mark_paid(reference)
    now = datetime.now(UTC)
    body = stripe_event("checkout.session.completed", session, created=int(now.timestamp()))
    headers = {"Stripe-Signature": sign_webhook(body, WEBHOOK_SECRET, int(now.timestamp()))}
    event = provider.parse_webhook(payload=body, headers=headers, now=now)
    assert event is not None and event.kind == "paid" and event.payment_ref

    first = provider.refund(payment_ref=event.payment_ref, amount_cents=1000, idempotency_key="r1")
    again = provider.refund(payment_ref=event.payment_ref, amount_cents=1000, idempotency_key="r1")
    assert first == again
    assert first.reference.startswith("re_")
    assert (first.amount_cents, first.status) == (1000, "succeeded")

    direct = stripe.StripeClient(TEST_API_KEY, base_addresses={"api": localstripe.base_url})
    refunds = direct.v1.refunds.list({"payment_intent": event.payment_ref})
    assert [r.id for r in refunds.data] == [first.reference]


def test_refund_of_an_unknown_payment_fails(provider: StripePayments) -> None:
    with pytest.raises(RefundFailed) as caught:
        provider.refund(payment_ref="pi_doesnotexist", amount_cents=100, idempotency_key="k")
    assert TEST_API_KEY not in str(caught.value)


def test_unreachable_stripe_is_unavailable() -> None:
    client = make_stripe_client(
        TEST_API_KEY,
        api_base=f"http://127.0.0.1:{free_port()}",
        max_network_retries=0,
        timeout_seconds=5,
    )
    provider = StripePayments(client, WEBHOOK_SECRET)
    with pytest.raises(PaymentProviderUnavailable) as caught:
        provider.confirm(reference="cs_test_x")
    assert TEST_API_KEY not in str(caught.value)


def test_rejected_api_key_is_unavailable_and_not_echoed(fake_stripe: FakeStripe) -> None:
    wrong_key = "sk_test_FAKE_wrong_key_123456"
    client = make_stripe_client(wrong_key, api_base=fake_stripe.base_url, max_network_retries=0)
    with pytest.raises(PaymentProviderUnavailable) as caught:
        StripePayments(client, WEBHOOK_SECRET).confirm(reference="cs_test_x")
    assert caught.value.http_status == 401
    assert wrong_key not in str(caught.value)
