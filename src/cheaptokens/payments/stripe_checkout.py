"""Stripe Checkout behind ``PaymentProvider``.

The buyer pays on a Stripe-hosted Checkout Session (``mode=payment``, one ``price_data`` line
with the quoted amount); Stripe tells the shop through signed webhooks, and the success redirect
can ask directly (``confirm``). Refunds go through the Refunds API on the PaymentIntent.
https://docs.stripe.com/api/checkout/sessions/create, https://docs.stripe.com/api/refunds/create

The ``stripe.StripeClient`` is built by the caller (``make_stripe_client``) and passed in, so
tests point it at a local server (docs/architecture.md, "Wire once, pass down").
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import stripe
from stripe.params.checkout import SessionCreateParams

from cheaptokens import metrics
from cheaptokens.payments.errors import InvalidCheckout, PaymentError, RefundFailed
from cheaptokens.payments.signatures import header_value, verify_signature
from cheaptokens.payments.stripe_errors import PROVIDER, translate
from cheaptokens.payments.stripe_events import event_from_payload, event_from_session
from cheaptokens.payments.types import Checkout, PaymentEvent, Refund

SIGNATURE_HEADER = "Stripe-Signature"


_BODY_DUMPS = ("message='Post details'", "message='API response body'")


def _no_bodies(record: logging.LogRecord) -> bool:
    """Drop the SDK's DEBUG dumps of request and response bodies: a Checkout Session's
    success_url carries the buyer's order token (in its fragment), so those lines would put it
    in the shop's logs whenever DEBUG logging is on."""
    if record.levelno > logging.DEBUG:
        return True
    message = record.getMessage()
    return not any(marker in message for marker in _BODY_DUMPS)


logging.getLogger("stripe").addFilter(_no_bodies)

# Stripe accepts a Checkout Session expiry between 30 minutes and 24 hours after creation,
# measured on Stripe's clock when the request arrives. The margins absorb request latency and
# clock skew so a value computed here is never refused there.
MIN_EXPIRY = timedelta(minutes=30)
MAX_EXPIRY = timedelta(hours=24)
EXPIRY_MARGIN = timedelta(minutes=5)
_EXPIRY_STEP_SECONDS = 300


def clamp_expiry(requested: datetime, *, now: datetime) -> datetime:
    """Bring ``requested`` into Stripe's window [now+35 min, now+23 h 55 min].

    A value raised to the lower bound is rounded up to a 5-minute step, so a retry of the same
    request a little later sends the same parameters and hits the same idempotency key instead
    of Stripe's "same key, different parameters" error.
    """
    lowest = now + MIN_EXPIRY + EXPIRY_MARGIN
    highest = now + MAX_EXPIRY - EXPIRY_MARGIN
    if requested < lowest:
        seconds = math.ceil(lowest.timestamp() / _EXPIRY_STEP_SECONDS) * _EXPIRY_STEP_SECONDS
        return datetime.fromtimestamp(seconds, tz=UTC)
    if requested > highest:
        return datetime.fromtimestamp(int(highest.timestamp()), tz=UTC)
    return datetime.fromtimestamp(int(requested.timestamp()), tz=UTC)


def with_session_id_placeholder(success_url: str) -> str:
    """Make the success URL carry ``{CHECKOUT_SESSION_ID}`` (Stripe substitutes the id)."""
    if "{CHECKOUT_SESSION_ID}" in success_url:
        return success_url
    separator = "&" if "?" in success_url else "?"
    return f"{success_url}{separator}session_id={{CHECKOUT_SESSION_ID}}"


def make_stripe_client(
    api_key: str,
    *,
    api_base: str | None = None,
    timeout_seconds: float = 20.0,
    max_network_retries: int = 2,
) -> stripe.StripeClient:
    """Build the ``StripeClient`` the shop passes to ``StripePayments``.

    Explicit timeout; the SDK retries network failures itself with the same idempotency key.
    ``api_base`` points it at a fake or localstripe in tests.
    """
    http_client = stripe.HTTPXClient(timeout=timeout_seconds, allow_sync_methods=True)
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base} if api_base else None,
        http_client=http_client,
        max_network_retries=max_network_retries,
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


class StripePayments:
    """``PaymentProvider`` backed by Stripe Checkout Sessions."""

    name = PROVIDER

    def __init__(
        self,
        client: stripe.StripeClient,
        webhook_secret: str,
        *,
        currency: str = "usd",
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not webhook_secret:
            raise ValueError("a Stripe webhook signing secret is required")
        self._client = client
        self._webhook_key = webhook_secret.encode()
        self.currency = currency.lower()
        self._clock = clock

    def __repr__(self) -> str:
        # Never show the client (API key) or the webhook secret.
        return f"StripePayments(currency={self.currency!r})"

    @metrics.payment_action("create_checkout")
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
        """Create a Checkout Session for one order.

        The expiry is clamped to Stripe's window (see ``clamp_expiry``): the returned
        ``Checkout.expires_at`` is the session's real one and may be later than asked.
        The idempotency key is derived from the order and the parameters, so a retry returns
        the same session while a new attempt with other parameters gets a new one.
        """
        if amount_cents <= 0:
            raise InvalidCheckout("amount must be a positive number of cents", provider=PROVIDER)
        if currency.lower() != self.currency:
            raise InvalidCheckout(
                f"this shop charges in {self.currency}, not {currency.lower()}", provider=PROVIDER
            )
        params: SessionCreateParams = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": self.currency,
                        "unit_amount": amount_cents,
                        "product_data": {"name": description},
                    },
                }
            ],
            "metadata": {"order_id": order_id},
            "payment_intent_data": {"metadata": {"order_id": order_id}},
            "client_reference_id": order_id,
            "expires_at": int(clamp_expiry(expires_at, now=self._clock()).timestamp()),
            "success_url": with_session_id_placeholder(success_url),
            "cancel_url": cancel_url,
        }
        fingerprint = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
        try:
            session = self._client.v1.checkout.sessions.create(
                params,
                {"idempotency_key": f"cheaptokens-checkout-{order_id}-{fingerprint[:16]}"},
            )
        except stripe.StripeError as error:
            raise translate(error, action="create checkout") from None
        if not session.url:
            raise PaymentError(
                "Stripe returned a Checkout Session without a URL", provider=PROVIDER
            )
        return Checkout(
            provider=PROVIDER,
            reference=session.id,
            checkout_url=session.url,
            expires_at=datetime.fromtimestamp(session.expires_at, tz=UTC),
        )

    @metrics.payment_action("parse_webhook")
    def parse_webhook(
        self, *, payload: bytes, headers: Mapping[str, str], now: datetime
    ) -> PaymentEvent | None:
        """Verify ``Stripe-Signature`` over the raw body (300 s tolerance around ``now``) and
        translate the Checkout events the shop acts on; see ``stripe_events``."""
        verify_signature(
            payload=payload,
            header=header_value(headers, SIGNATURE_HEADER),
            key=self._webhook_key,
            now=now,
        )
        return event_from_payload(payload)

    @metrics.payment_action("confirm")
    def confirm(self, *, reference: str) -> PaymentEvent | None:
        """Retrieve the session: a paid event if paid, an expired event if expired, else None."""
        try:
            session = self._client.v1.checkout.sessions.retrieve(reference)
        except stripe.StripeError as error:
            raise translate(error, action="retrieve checkout") from None
        return event_from_session(session.to_dict(recursive=True), occurred_at=self._clock())

    @metrics.payment_action("refund")
    def refund(self, *, payment_ref: str, amount_cents: int, idempotency_key: str) -> Refund:
        """Refund part or all of a PaymentIntent; Stripe replays the same key's answer.

        Raises RefundFailed when Stripe refuses or reports the refund failed or canceled.
        """
        if amount_cents <= 0:
            raise RefundFailed("refund amount must be positive", provider=PROVIDER)
        try:
            refund = self._client.v1.refunds.create(
                {"payment_intent": payment_ref, "amount": amount_cents},
                {"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as error:
            raise translate(error, action="refund") from None
        status = refund.status or "pending"
        if status in ("failed", "canceled"):
            raise RefundFailed(f"Stripe refund {refund.id} is {status}", provider=PROVIDER)
        return Refund(reference=refund.id, amount_cents=refund.amount, status=status)
