"""The payments exception tree.

    PaymentError                     anything a payment provider could not do
    ├── WebhookSignatureError        webhook not provably from the provider (bad, missing or stale
    │   │                            signature): answer 400, never act on it
    │   └── WebhookPayloadError      signed but unusable body (not JSON, not an event): answer 400
    ├── PaymentProviderUnavailable   network failure, 5xx, rate limit or rejected credentials:
    │                                nothing happened that we know of, try again later
    ├── RefundFailed                 the provider refused the refund (already refunded, bad amount)
    └── InvalidCheckout              a checkout that cannot be created, read or found (tampered
                                     sandbox token, unknown session id, parameters Stripe refuses)

Messages never contain API keys, webhook secrets or signatures: they may reach logs and error
pages (invariant 5, docs/architecture.md). Provider details that are safe to keep (HTTP status,
Stripe error code, Stripe request id) are attributes, not text.
"""

from __future__ import annotations


class PaymentError(Exception):
    """Base class: a payment provider operation failed."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        http_status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.http_status = http_status
        self.code = code
        self.request_id = request_id


class WebhookSignatureError(PaymentError):
    """The webhook's signature is missing, malformed, wrong or outside the time tolerance."""


class WebhookPayloadError(WebhookSignatureError):
    """The webhook is correctly signed but its body is not an event we can read.

    A subclass of WebhookSignatureError so that a web layer that answers 400 to that error
    answers 400 here too without knowing the difference.
    """


class PaymentProviderUnavailable(PaymentError):
    """The provider could not be reached or answered with a transient error; retry later."""


class RefundFailed(PaymentError):
    """The provider refused to refund."""


class InvalidCheckout(PaymentError):
    """The checkout cannot be created, decoded or found."""
