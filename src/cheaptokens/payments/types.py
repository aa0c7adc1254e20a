"""What crosses the payments boundary: plain frozen dataclasses and the provider Protocol.

The orders package and the web layer only ever see these; Stripe objects never leak out
(docs/architecture.md, "Interfaces with a real module and a shipped fake").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

EventKind = Literal["paid", "failed", "expired"]


@dataclass(frozen=True)
class Checkout:
    """A hosted payment page the buyer is sent to.

    ``expires_at`` is the provider's real expiry, which may differ from the one asked for
    (Stripe clamps to 30 min..24 h, see ``stripe_checkout``).
    """

    provider: str
    reference: str
    checkout_url: str
    expires_at: datetime


@dataclass(frozen=True)
class PaymentEvent:
    """Something the provider tells the shop about a checkout.

    ``event_id`` is stable for the same provider event, so callers dedupe on it.
    ``payment_ref`` is what ``refund`` needs (Stripe: the PaymentIntent id).
    """

    event_id: str
    kind: EventKind
    order_id: str
    reference: str
    payment_ref: str | None
    amount_cents: int
    currency: str
    occurred_at: datetime


@dataclass(frozen=True)
class Refund:
    """A refund the provider accepted; ``status`` is the provider's ("succeeded", "pending")."""

    reference: str
    amount_cents: int
    status: str


class PaymentProvider(Protocol):
    """One payment provider. Implementations: ``SandboxPayments``, ``StripePayments``."""

    name: str

    def create_checkout(
        self,
        *,
        order_id: str,
        amount_cents: int,
        currency: str,
        description: str,
        success_url: str,
        cancel_url: str,
        expires_at: datetime,
    ) -> Checkout:
        """Open a hosted checkout for ``amount_cents`` and return where to send the buyer."""
        ...

    def parse_webhook(
        self, *, payload: bytes, headers: Mapping[str, str], now: datetime
    ) -> PaymentEvent | None:
        """Verify the signature over the raw body and translate the event.

        Raises WebhookSignatureError for a bad, missing or stale signature; returns None for
        event types the shop ignores.
        """
        ...

    def confirm(self, *, reference: str) -> PaymentEvent | None:
        """Ask the provider whether the checkout was paid (for the success redirect)."""
        ...

    def refund(self, *, payment_ref: str, amount_cents: int, idempotency_key: str) -> Refund:
        """Refund ``amount_cents`` of a payment; the same idempotency key refunds once."""
        ...
