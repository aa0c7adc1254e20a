"""The offline payment provider: a signed token instead of a payment service.

``create_checkout`` packs (order_id, amount, currency, expiry) into a URL-safe token signed with
HMAC-SHA256, so any shop process holding the secret can read it back without shared memory.
The web layer renders Pay / Decline at ``/checkout/sandbox/{token}`` and calls ``read_checkout``
and ``outcome``; the buyer's button chooses the result (saleor's dummy gateway does the same),
which makes failure paths easy to drive in tests.

Keys: the one ``secret`` is split into independent sub-keys (checkout tokens, webhooks, payment
ids) so a MAC made for one purpose is never valid for another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from cheaptokens import metrics
from cheaptokens.payments.errors import (
    InvalidCheckout,
    RefundFailed,
    WebhookPayloadError,
)
from cheaptokens.payments.signatures import header_value, sign_webhook, verify_signature
from cheaptokens.payments.types import Checkout, EventKind, PaymentEvent, Refund

SIGNATURE_HEADER = "X-Sandbox-Signature"
_TOKEN_VERSION = 1
#: The longest description a checkout token carries (the shop's are ~50 characters).
MAX_DESCRIPTION = 200
_KINDS: frozenset[str] = frozenset({"paid", "failed", "expired"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SandboxCheckout:
    """A decoded, verified sandbox checkout token."""

    token: str
    reference: str
    order_id: str
    amount_cents: int
    currency: str
    expires_at: datetime
    #: what the payment buys, e.g. "$5.00 of Venice.ai credit, valid until 00:00 UTC"
    description: str = ""

    def is_expired(self, now: datetime) -> bool:
        """True once ``now`` has reached the checkout's expiry."""
        return now >= self.expires_at


class SandboxPayments:
    """Stateless sandbox implementation of ``PaymentProvider``."""

    name = "sandbox"

    def __init__(self, secret: bytes, public_base_url: str) -> None:
        if len(secret) < 16:
            raise ValueError("sandbox payment secret must be at least 16 bytes")
        self._checkout_key = self._subkey(secret, b"checkout-token")
        self._webhook_key = self._subkey(secret, b"webhook")
        self._payment_key = self._subkey(secret, b"payment-ref")
        self._base_url = public_base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"SandboxPayments(public_base_url={self._base_url!r})"

    @staticmethod
    def _subkey(secret: bytes, purpose: bytes) -> bytes:
        return hmac.new(secret, b"cheaptokens-sandbox:" + purpose, hashlib.sha256).digest()

    # -- checkout -------------------------------------------------------------------------------

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
        """Sign a token for the order; the URL is the sandbox's Pay / Decline page.

        ``description`` (what the payment buys, shown on that page as Stripe shows its line
        item; at most :data:`MAX_DESCRIPTION` characters) rides in the token. The success/cancel
        URLs do not: the web layer knows where to send the buyer after the sandbox page.
        """
        if amount_cents <= 0:
            raise InvalidCheckout("amount must be a positive number of cents", provider=self.name)
        if expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        body = json.dumps(
            {
                "v": _TOKEN_VERSION,
                "o": order_id,
                "a": amount_cents,
                "c": currency.lower(),
                "e": int(expires_at.timestamp()),
                "d": description[:MAX_DESCRIPTION],
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        body_b64 = _b64(body)
        mac = hmac.new(self._checkout_key, body_b64.encode(), hashlib.sha256).digest()
        token = f"{body_b64}.{_b64(mac)}"
        checkout = self.read_checkout(token)
        return Checkout(
            provider=self.name,
            reference=checkout.reference,
            checkout_url=f"{self._base_url}/checkout/sandbox/{token}",
            expires_at=checkout.expires_at,
        )

    def read_checkout(self, token: str) -> SandboxCheckout:
        """Verify and decode a token; raise InvalidCheckout if it was not signed by us."""
        body_b64, sep, mac_b64 = token.partition(".")
        if not sep:
            raise InvalidCheckout("malformed sandbox checkout token", provider=self.name)
        expected = hmac.new(self._checkout_key, body_b64.encode(), hashlib.sha256).digest()
        try:
            given = _unb64(mac_b64)
        except (binascii.Error, ValueError):
            raise InvalidCheckout("malformed sandbox checkout token", provider=self.name) from None
        if not hmac.compare_digest(expected, given):
            raise InvalidCheckout("sandbox checkout token signature mismatch", provider=self.name)
        try:
            fields = json.loads(_unb64(body_b64))
            if fields["v"] != _TOKEN_VERSION:
                raise ValueError("unknown token version")
            return SandboxCheckout(
                token=token,
                reference="sbcs_" + _digest("checkout", token),
                order_id=str(fields["o"]),
                amount_cents=int(fields["a"]),
                currency=str(fields["c"]),
                expires_at=datetime.fromtimestamp(int(fields["e"]), tz=UTC),
                description=str(fields.get("d", "")),
            )
        except (ValueError, KeyError, TypeError):
            # Only reachable with our own MAC over a body we did not write (a bug or a key
            # shared with something else): still refuse it.
            raise InvalidCheckout("unreadable sandbox checkout token", provider=self.name) from None

    def outcome(
        self, token: str, outcome: Literal["paid", "declined"], now: datetime
    ) -> PaymentEvent:
        """The buyer pressed Pay or Decline on the sandbox page.

        The event id depends only on the token and the result, so a double click yields the
        same event twice (the caller dedupes). After the expiry the result is ``expired``
        whatever the button, as Stripe would not take a payment on an expired session.
        """
        checkout = self.read_checkout(token)
        kind: EventKind
        if checkout.is_expired(now):
            kind = "expired"
        elif outcome == "paid":
            kind = "paid"
        elif outcome == "declined":
            kind = "failed"
        else:
            raise ValueError("outcome must be 'paid' or 'declined'")
        return PaymentEvent(
            event_id="sbevt_" + _digest("event", token, kind),
            kind=kind,
            order_id=checkout.order_id,
            reference=checkout.reference,
            payment_ref=self._payment_ref(checkout) if kind == "paid" else None,
            amount_cents=checkout.amount_cents,
            currency=checkout.currency,
            occurred_at=now,
        )

    def _payment_ref(self, checkout: SandboxCheckout) -> str:
        mac = hmac.new(self._payment_key, checkout.reference.encode(), hashlib.sha256)
        return "sbpay_" + mac.hexdigest()[:32]

    @metrics.payment_action("confirm")
    def confirm(self, *, reference: str) -> PaymentEvent | None:
        """Always None: the sandbox keeps no state, and its result reaches the shop through
        ``outcome`` (called by the web layer when the buyer presses a button) instead."""
        return None

    # -- refunds --------------------------------------------------------------------------------

    @metrics.payment_action("refund")
    def refund(self, *, payment_ref: str, amount_cents: int, idempotency_key: str) -> Refund:
        """Always succeeds for a sandbox payment; the same key gives the same refund reference."""
        if not payment_ref.startswith("sbpay_"):
            raise RefundFailed("not a sandbox payment reference", provider=self.name)
        if amount_cents <= 0:
            raise RefundFailed("refund amount must be positive", provider=self.name)
        reference = "sbre_" + _digest("refund", payment_ref, idempotency_key)
        return Refund(reference=reference, amount_cents=amount_cents, status="succeeded")

    # -- webhooks -------------------------------------------------------------------------------

    def event_payload(self, event: PaymentEvent) -> bytes:
        """Serialise ``event`` as the JSON body ``parse_webhook`` reads (tests, CLI tools)."""
        return json.dumps(
            {
                "id": event.event_id,
                "type": event.kind,
                "order_id": event.order_id,
                "reference": event.reference,
                "payment_ref": event.payment_ref,
                "amount_cents": event.amount_cents,
                "currency": event.currency,
                "occurred_at": event.occurred_at.isoformat(),
            },
            separators=(",", ":"),
        ).encode()

    def sign_webhook(self, payload: bytes, timestamp: int) -> str:
        """The ``X-Sandbox-Signature`` value for ``payload`` (Stripe's ``t=,v1=`` scheme)."""
        return sign_webhook(payload, self._webhook_key.hex(), timestamp)

    @metrics.payment_action("parse_webhook")
    def parse_webhook(
        self, *, payload: bytes, headers: Mapping[str, str], now: datetime
    ) -> PaymentEvent | None:
        """Verify ``X-Sandbox-Signature`` over the raw body and read the event.

        Unknown ``type`` values give None, like Stripe events the shop ignores.
        """
        verify_signature(
            payload=payload,
            header=header_value(headers, SIGNATURE_HEADER),
            key=self._webhook_key.hex().encode(),
            now=now,
        )
        try:
            body: Any = json.loads(payload)
            if not isinstance(body, dict):
                raise TypeError("not an object")
            if body.get("type") not in _KINDS:
                return None
            occurred_at = datetime.fromisoformat(str(body["occurred_at"]))
            if occurred_at.tzinfo is None:
                raise ValueError("occurred_at must carry a timezone")
            payment_ref = body.get("payment_ref")
            return PaymentEvent(
                event_id=str(body["id"]),
                kind=body["type"],
                order_id=str(body["order_id"]),
                reference=str(body["reference"]),
                payment_ref=None if payment_ref is None else str(payment_ref),
                amount_cents=_as_int(body["amount_cents"]),
                currency=str(body["currency"]),
                occurred_at=occurred_at,
            )
        except (ValueError, KeyError, TypeError):
            raise WebhookPayloadError("signed sandbox webhook body is not an event") from None


def _as_int(value: object) -> int:
    # bool is an int subclass and floats are never money here.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("amount must be an integer number of cents")
    return value
