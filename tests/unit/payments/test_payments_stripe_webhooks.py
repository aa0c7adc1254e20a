"""StripePayments.parse_webhook: signature checks and Checkout event translation.

No HTTP is involved; the client points at a closed port and is never called.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from cheaptokens.payments import PaymentProvider, WebhookPayloadError, WebhookSignatureError
from cheaptokens.payments.signatures import sign_webhook
from cheaptokens.payments.stripe_checkout import StripePayments, make_stripe_client
from support.stripe_fakes import stripe_event

SECRET = "whsec_test_FAKE_not_a_real_secret"
T = 1_760_000_000
NOW = datetime.fromtimestamp(T + 5, tz=UTC)


@pytest.fixture
def provider() -> StripePayments:
    client = make_stripe_client("sk_test_FAKE_unused", api_base="http://127.0.0.1:9")
    return StripePayments(client, SECRET)


def _session(**overrides: Any) -> dict[str, Any]:
    session = {
        "id": "cs_test_abc",
        "object": "checkout.session",
        "amount_total": 1999,
        "currency": "usd",
        "metadata": {"order_id": "ord_42"},
        "client_reference_id": "ord_42",
        "payment_intent": "pi_test_123",
        "payment_status": "paid",
        "status": "complete",
    }
    session.update(overrides)
    return session


def _parse(
    provider: StripePayments, body: bytes, *, header: str | None = None, now: datetime = NOW
) -> Any:
    headers = {} if header == "" else {"Stripe-Signature": header or sign_webhook(body, SECRET, T)}
    return provider.parse_webhook(payload=body, headers=headers, now=now)


def test_is_a_payment_provider(provider: StripePayments) -> None:
    checked: PaymentProvider = provider
    assert checked.name == "stripe"


def test_completed_and_paid_is_a_paid_event(provider: StripePayments) -> None:
    body = stripe_event("checkout.session.completed", _session(), created=T, event_id="evt_1")
    event = _parse(provider, body)
    assert event is not None
    assert (event.event_id, event.kind, event.order_id) == ("evt_1", "paid", "ord_42")
    assert (event.reference, event.payment_ref) == ("cs_test_abc", "pi_test_123")
    assert (event.amount_cents, event.currency) == (1999, "usd")
    assert event.occurred_at == datetime.fromtimestamp(T, tz=UTC)


def test_redelivery_keeps_the_event_id(provider: StripePayments) -> None:
    body = stripe_event("checkout.session.completed", _session(), created=T, event_id="evt_1")
    first = _parse(provider, body)
    later = datetime.fromtimestamp(T + 3600, tz=UTC)
    redelivered = _parse(provider, body, header=sign_webhook(body, SECRET, T + 3600), now=later)
    assert first == redelivered


def test_completed_but_unpaid_is_not_paid(provider: StripePayments) -> None:
    session = _session(payment_status="unpaid", payment_intent=None)
    body = stripe_event("checkout.session.completed", session, created=T)
    assert _parse(provider, body) is None


@pytest.mark.parametrize(
    ("event_type", "kind", "payment_ref"),
    [
        ("checkout.session.async_payment_succeeded", "paid", "pi_test_123"),
        ("checkout.session.async_payment_failed", "failed", None),
        ("checkout.session.expired", "expired", None),
    ],
)
def test_async_and_expiry_events(
    provider: StripePayments, event_type: str, kind: str, payment_ref: str | None
) -> None:
    event = _parse(provider, stripe_event(event_type, _session(), created=T))
    assert event is not None
    assert (event.kind, event.payment_ref, event.order_id) == (kind, payment_ref, "ord_42")


@pytest.mark.parametrize(
    "event_type", ["payment_intent.succeeded", "charge.refunded", "checkout.session.created"]
)
def test_other_event_types_are_ignored(provider: StripePayments, event_type: str) -> None:
    assert _parse(provider, stripe_event(event_type, _session(), created=T)) is None


def test_sessions_of_other_integrations_are_ignored(provider: StripePayments) -> None:
    session = _session(metadata={}, client_reference_id=None)
    assert _parse(provider, stripe_event("checkout.session.completed", session, created=T)) is None


def test_order_id_falls_back_to_client_reference_id(provider: StripePayments) -> None:
    session = _session(metadata={})
    event = _parse(provider, stripe_event("checkout.session.completed", session, created=T))
    assert event is not None and event.order_id == "ord_42"


def test_expanded_payment_intent_is_read(provider: StripePayments) -> None:
    session = _session(payment_intent={"id": "pi_test_exp", "object": "payment_intent"})
    event = _parse(provider, stripe_event("checkout.session.completed", session, created=T))
    assert event is not None and event.payment_ref == "pi_test_exp"


def test_signature_failures(provider: StripePayments) -> None:
    body = stripe_event("checkout.session.completed", _session(), created=T)
    forged = f"t={T},v1={'ab' * 32}"
    wrong_secret = sign_webhook(body, "whsec_test_FAKE_other", T)
    stale = sign_webhook(body, SECRET, T - 400)
    tampered = body.replace(b"1999", b"1")
    assert tampered != body
    cases = [
        (body, forged),
        (body, wrong_secret),
        (body, ""),
        (body, stale),
        (tampered, sign_webhook(body, SECRET, T)),
    ]
    for payload, header in cases:
        with pytest.raises(WebhookSignatureError) as caught:
            _parse(provider, payload, header=header)
        assert SECRET not in str(caught.value)


def test_lower_case_header_name_is_accepted(provider: StripePayments) -> None:
    body = stripe_event("checkout.session.expired", _session(), created=T)
    headers = {"stripe-signature": sign_webhook(body, SECRET, T)}
    assert provider.parse_webhook(payload=body, headers=headers, now=NOW) is not None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        json.dumps({"type": "checkout.session.completed"}).encode(),
        stripe_event("checkout.session.completed", _session(amount_total=19.99), created=T),
        stripe_event("checkout.session.completed", _session(amount_total=None), created=T),
    ],
)
def test_signed_garbage_is_a_payload_error(provider: StripePayments, body: bytes) -> None:
    with pytest.raises(WebhookPayloadError):
        _parse(provider, body)


def test_repr_hides_secrets(provider: StripePayments) -> None:
    assert SECRET not in repr(provider)
    assert "sk_test" not in repr(provider)


def test_empty_webhook_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        StripePayments(make_stripe_client("sk_test_FAKE"), "")
