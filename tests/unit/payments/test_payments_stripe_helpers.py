"""Pure helpers of the Stripe provider: expiry clamping, success URL, error translation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import stripe

from cheaptokens.payments import (
    InvalidCheckout,
    PaymentError,
    PaymentProviderUnavailable,
    RefundFailed,
)
from cheaptokens.payments.stripe_checkout import clamp_expiry, with_session_id_placeholder
from cheaptokens.payments.stripe_errors import redact, translate
from cheaptokens.payments.stripe_events import event_from_session

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def test_short_expiry_is_raised_to_stripes_minimum_on_a_stable_step() -> None:
    now = NOW + timedelta(seconds=30)
    clamped = clamp_expiry(now + timedelta(minutes=10), now=now)
    assert clamped == NOW + timedelta(minutes=40)
    # a retry a minute later (same 5-minute step) sends the same value, so the
    # idempotency key still matches
    later = now + timedelta(minutes=1)
    assert clamp_expiry(now + timedelta(minutes=10), now=later) == clamped


def test_long_expiry_is_lowered_below_24_hours() -> None:
    clamped = clamp_expiry(NOW + timedelta(days=3), now=NOW)
    assert clamped == NOW + timedelta(hours=24) - timedelta(minutes=5)


def test_expiry_inside_the_window_is_kept_to_the_second() -> None:
    wanted = NOW + timedelta(hours=2, microseconds=500)
    assert clamp_expiry(wanted, now=NOW) == NOW + timedelta(hours=2)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://s/ok", "https://s/ok?session_id={CHECKOUT_SESSION_ID}"),
        ("https://s/ok?o=1", "https://s/ok?o=1&session_id={CHECKOUT_SESSION_ID}"),
        ("https://s/ok?sid={CHECKOUT_SESSION_ID}", "https://s/ok?sid={CHECKOUT_SESSION_ID}"),
    ],
)
def test_success_url_carries_the_session_id(url: str, expected: str) -> None:
    assert with_session_id_placeholder(url) == expected


@pytest.mark.parametrize(
    ("error", "action", "expected"),
    [
        (stripe.APIConnectionError("boom"), "create checkout", PaymentProviderUnavailable),
        (stripe.APIError("5xx", http_status=502), "refund", PaymentProviderUnavailable),
        (stripe.RateLimitError("slow down", http_status=429), "refund", PaymentProviderUnavailable),
        (stripe.AuthenticationError("bad key"), "create checkout", PaymentProviderUnavailable),
        (stripe.InvalidRequestError("no such", "id", http_status=404), "confirm", InvalidCheckout),
        (
            stripe.InvalidRequestError("already", "amount", code="charge_already_refunded"),
            "refund",
            RefundFailed,
        ),
        (stripe.CardError("declined", None, "card_declined"), "create checkout", PaymentError),
    ],
)
def test_translate_maps_the_sdk_tree(
    error: stripe.StripeError, action: str, expected: type[PaymentError]
) -> None:
    translated = translate(error, action=action)
    assert type(translated) is expected
    assert translated.provider == "stripe"


def test_translate_keeps_code_and_status_but_redacts_keys() -> None:
    error = stripe.AuthenticationError(
        "Invalid API Key provided: sk_test_FAKEabcdef1234 (whsec_FAKE_x)", http_status=401
    )
    translated = translate(error, action="refund")
    assert "sk_test_FAKEabcdef1234" not in str(translated)
    assert "whsec_FAKE_x" not in str(translated)
    assert translated.http_status == 401
    assert redact("key rk_live_FAKE123 here") == "key [redacted] here"


def test_confirmation_of_open_or_delayed_sessions_says_nothing() -> None:
    base = {"id": "cs_1", "amount_total": 5, "currency": "usd", "metadata": {"order_id": "o"}}
    assert (
        event_from_session({**base, "status": "open", "payment_status": "unpaid"}, occurred_at=NOW)
        is None
    )
    assert (
        event_from_session(
            {**base, "status": "complete", "payment_status": "unpaid"}, occurred_at=NOW
        )
        is None
    )
    expired = event_from_session(
        {**base, "status": "expired", "payment_status": "unpaid"}, occurred_at=NOW
    )
    assert expired is not None and expired.kind == "expired"
