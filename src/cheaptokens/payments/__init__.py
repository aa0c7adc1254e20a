"""Payments behind one interface: ``PaymentProvider`` with a sandbox and a Stripe Checkout module.

Import the boundary types and the offline provider from here::

    from cheaptokens.payments import Checkout, PaymentEvent, PaymentProvider, Refund
    from cheaptokens.payments import SandboxPayments
    from cheaptokens.payments.errors import PaymentError, WebhookSignatureError, ...

The Stripe provider lives in ``cheaptokens.payments.stripe_checkout`` (``StripePayments``,
``make_stripe_client``) and is not imported here, so code that only needs the types does not
load the Stripe SDK. ``sign_webhook`` (Stripe's signature scheme) is pure and exported here.
This package imports no web framework, database or orders code.
"""

from cheaptokens.payments.errors import (
    InvalidCheckout,
    PaymentError,
    PaymentProviderUnavailable,
    RefundFailed,
    WebhookPayloadError,
    WebhookSignatureError,
)
from cheaptokens.payments.sandbox import SandboxCheckout, SandboxPayments
from cheaptokens.payments.signatures import sign_webhook
from cheaptokens.payments.types import Checkout, EventKind, PaymentEvent, PaymentProvider, Refund

__all__ = [
    "Checkout",
    "EventKind",
    "InvalidCheckout",
    "PaymentError",
    "PaymentEvent",
    "PaymentProvider",
    "PaymentProviderUnavailable",
    "Refund",
    "RefundFailed",
    "SandboxCheckout",
    "SandboxPayments",
    "WebhookPayloadError",
    "WebhookSignatureError",
    "sign_webhook",
]
