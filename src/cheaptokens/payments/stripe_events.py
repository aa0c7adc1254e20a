"""Pure translation of Stripe Checkout Session events and objects into ``PaymentEvent``.

Events the shop acts on (https://docs.stripe.com/checkout/fulfillment):

- ``checkout.session.completed``: paid only when ``payment_status == "paid"``; with "unpaid"
  the buyer chose a delayed method and one of the two async events follows, so it is ignored.
- ``checkout.session.async_payment_succeeded``: paid.
- ``checkout.session.async_payment_failed``: failed.
- ``checkout.session.expired``: expired.

Everything else, and sessions without our ``order_id`` (another integration on the same Stripe
account), gives None: answering 2xx stops Stripe from retrying something we will never use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cheaptokens.payments.errors import WebhookPayloadError
from cheaptokens.payments.types import EventKind, PaymentEvent


def _kind_for(event_type: str, session: Mapping[str, Any]) -> EventKind | None:
    if event_type == "checkout.session.completed":
        return "paid" if session.get("payment_status") == "paid" else None
    if event_type == "checkout.session.async_payment_succeeded":
        return "paid"
    if event_type == "checkout.session.async_payment_failed":
        return "failed"
    if event_type == "checkout.session.expired":
        return "expired"
    return None


def _order_id(session: Mapping[str, Any]) -> str | None:
    metadata = session.get("metadata") or {}
    order_id = metadata.get("order_id") if isinstance(metadata, Mapping) else None
    order_id = order_id or session.get("client_reference_id")
    return order_id if isinstance(order_id, str) and order_id else None


def _payment_intent_id(session: Mapping[str, Any]) -> str | None:
    value = session.get("payment_intent")
    if isinstance(value, Mapping):  # expanded
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _build(
    session: Mapping[str, Any], *, kind: EventKind, event_id: str, occurred_at: datetime
) -> PaymentEvent | None:
    order_id = _order_id(session)
    if order_id is None:
        return None
    amount = session.get("amount_total")
    session_id = session.get("id")
    currency = session.get("currency")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise WebhookPayloadError("Checkout Session has no integer amount_total")
    if not isinstance(session_id, str) or not isinstance(currency, str):
        raise WebhookPayloadError("Checkout Session lacks id or currency")
    return PaymentEvent(
        event_id=event_id,
        kind=kind,
        order_id=order_id,
        reference=session_id,
        payment_ref=_payment_intent_id(session) if kind == "paid" else None,
        amount_cents=amount,
        currency=currency.lower(),
        occurred_at=occurred_at,
    )


def event_from_payload(payload: bytes) -> PaymentEvent | None:
    """Translate a verified webhook body. The event id is Stripe's ``evt_...``, which stays the
    same when Stripe redelivers the event, so the caller can dedupe on it."""
    try:
        body = json.loads(payload)
    except ValueError:
        raise WebhookPayloadError("Stripe webhook body is not JSON") from None
    if not isinstance(body, dict):
        raise WebhookPayloadError("Stripe webhook body is not an event object")
    event_type, event_id, created = body.get("type"), body.get("id"), body.get("created")
    session = (body.get("data") or {}).get("object") if isinstance(body.get("data"), dict) else None
    if not isinstance(event_type, str) or not isinstance(event_id, str):
        raise WebhookPayloadError("Stripe webhook event lacks id or type")
    if not event_type.startswith("checkout.session.") or not isinstance(session, dict):
        return None
    kind = _kind_for(event_type, session)
    if kind is None:
        return None
    if isinstance(created, bool) or not isinstance(created, int):
        raise WebhookPayloadError("Stripe webhook event lacks its creation time")
    occurred_at = datetime.fromtimestamp(created, tz=UTC)
    return _build(session, kind=kind, event_id=event_id, occurred_at=occurred_at)


def event_from_session(session: Mapping[str, Any], *, occurred_at: datetime) -> PaymentEvent | None:
    """What a retrieved session says now: paid, expired, or None (open, or paid later by a
    delayed method). The event id is derived from the session so repeated confirms match."""
    kind: EventKind | None = None
    if session.get("status") == "complete" and session.get("payment_status") == "paid":
        kind = "paid"
    elif session.get("status") == "expired":
        kind = "expired"
    if kind is None:
        return None
    event_id = f"confirm:{session.get('id')}:{kind}"
    return _build(session, kind=kind, event_id=event_id, occurred_at=occurred_at)
