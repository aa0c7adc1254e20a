"""Translate Stripe SDK errors into the payments exception tree without leaking secrets.

Stripe's own messages are kept (they help the operator) but anything shaped like a Stripe key
or signing secret is masked first: "Invalid API Key provided: sk_test_...1234" style messages
exist. The SDK exception is dropped (``from None``) because its repr carries the raw HTTP body
and headers. https://docs.stripe.com/error-handling
"""

from __future__ import annotations

import re

import stripe

from cheaptokens.payments.errors import (
    InvalidCheckout,
    PaymentError,
    PaymentProviderUnavailable,
    RefundFailed,
)

_SECRETISH = re.compile(r"\b(?:sk|rk|pk|whsec)_[A-Za-z0-9_*]+")

PROVIDER = "stripe"


def redact(text: str) -> str:
    """Mask anything that looks like a Stripe key or webhook secret."""
    return _SECRETISH.sub("[redacted]", text)


def _build(cls: type[PaymentError], message: str, error: stripe.StripeError) -> PaymentError:
    code = getattr(error, "code", None)
    return cls(
        message,
        provider=PROVIDER,
        http_status=error.http_status,
        code=code if isinstance(code, str) else None,
        request_id=error.request_id,
    )


def translate(error: stripe.StripeError, *, action: str) -> PaymentError:
    """Map one SDK error raised while doing ``action`` ("create checkout", "refund", ...).

    Transient or credential problems become PaymentProviderUnavailable (nothing happened);
    a refused refund becomes RefundFailed; a refused or unknown checkout InvalidCheckout.
    """
    message = f"Stripe {action} failed: {type(error).__name__}: {redact(error.user_message or '')}"
    transient = (
        stripe.APIConnectionError,
        stripe.APIError,
        stripe.RateLimitError,
        stripe.AuthenticationError,
        stripe.PermissionError,
    )
    if isinstance(error, transient):
        return _build(PaymentProviderUnavailable, message, error)
    if action == "refund":
        return _build(RefundFailed, message, error)
    if isinstance(error, stripe.InvalidRequestError | stripe.IdempotencyError):
        return _build(InvalidCheckout, message, error)
    return _build(PaymentError, message, error)
