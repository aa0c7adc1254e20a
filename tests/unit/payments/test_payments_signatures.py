"""Stripe's webhook signature scheme, checked against the official SDK as the oracle."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import stripe

from cheaptokens.payments import WebhookSignatureError, sign_webhook
from cheaptokens.payments.signatures import header_value, verify_signature

SECRET = "whsec_test_FAKE_not_a_real_secret"
BODY = b'{"id": "evt_test_1", "type": "checkout.session.completed"}'
T = 1_760_000_000
NOW = datetime.fromtimestamp(T + 10, tz=UTC)


def test_sign_webhook_matches_the_stripe_sdk() -> None:
    expected = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET, T)
    assert sign_webhook(BODY, SECRET, T) == expected


def test_sdk_accepts_our_signature_and_we_accept_the_sdks() -> None:
    header = sign_webhook(BODY, SECRET, T)
    assert stripe.WebhookSignature.verify_header(BODY, header, SECRET, tolerance=None)
    sdk_header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET, T)
    assert verify_signature(payload=BODY, header=sdk_header, key=SECRET.encode(), now=NOW) == T


def test_any_of_several_v1_signatures_may_match_while_a_secret_is_rolled() -> None:
    good = sign_webhook(BODY, SECRET, T).split(",")[1]
    header = f"t={T},v1={'0' * 64},{good},v0=ignored"
    assert verify_signature(payload=BODY, header=header, key=SECRET.encode(), now=NOW) == T


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"t=abc,v1={'0' * 64}",
        f"v1={'0' * 64}",
        f"t={T}",
        f"t={T},v0=abc",
        f"t={T},v1=é",
    ],
)
def test_malformed_headers_are_signature_errors(header: str | None) -> None:
    with pytest.raises(WebhookSignatureError):
        verify_signature(payload=BODY, header=header, key=SECRET.encode(), now=NOW)


@pytest.mark.parametrize("offset", [301, -301, 10_000])
def test_timestamps_beyond_tolerance_are_rejected(offset: int) -> None:
    header = sign_webhook(BODY, SECRET, T)
    now = datetime.fromtimestamp(T + offset, tz=UTC)
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify_signature(payload=BODY, header=header, key=SECRET.encode(), now=now)


@pytest.mark.parametrize("offset", [300, -300, 0])
def test_timestamps_at_the_tolerance_edge_pass(offset: int) -> None:
    header = sign_webhook(BODY, SECRET, T)
    now = datetime.fromtimestamp(T + offset, tz=UTC)
    assert verify_signature(payload=BODY, header=header, key=SECRET.encode(), now=now) == T


def test_messages_never_contain_the_secret_or_signature() -> None:
    header = sign_webhook(BODY, SECRET, T)
    with pytest.raises(WebhookSignatureError) as caught:
        verify_signature(payload=BODY + b" ", header=header, key=SECRET.encode(), now=NOW)
    assert SECRET not in str(caught.value)
    assert header.split("v1=")[1] not in str(caught.value)


def test_header_lookup_is_case_insensitive() -> None:
    assert header_value({"stripe-signature": "x"}, "Stripe-Signature") == "x"
    assert header_value({"Stripe-Signature": "y"}, "Stripe-Signature") == "y"
    assert header_value({"other": "z"}, "Stripe-Signature") is None
