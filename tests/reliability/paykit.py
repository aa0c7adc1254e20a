"""Helpers for the payment, fuzz and secrets tests: signed webhooks, shop state, key counts."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from cheaptokens.models import LedgerEntry, Order, Quote, WebhookEvent
from cheaptokens.payments import PaymentEvent, sign_webhook
from support.shopkit import Kit
from support.stripe_fakes import stripe_event

WHSEC = "whsec_test_FAKE_reliability_not_real"


def shop_keys(kit: Kit) -> list[Any]:
    """Every key the shop made in the Venice sandbox (all accounts)."""
    return [
        k
        for gw in kit.shop.gateways.values()
        for k in gw.list_keys()
        if (k.description or "").startswith("cheaptokens:")
    ]


def keys_of(kit: Kit, order_id: str) -> list[Any]:
    return [k for k in shop_keys(kit) if k.description == f"cheaptokens:{order_id}"]


def supply(kit: Kit) -> dict[str, Any]:
    r = kit.web.get("/api/supply")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def counts(kit: Kit) -> dict[str, int]:
    """Row counts of what a request could create."""
    with kit.shop.db.read() as s:
        return {
            "orders": s.scalar(select(func.count()).select_from(Order)) or 0,
            "quotes": s.scalar(select(func.count()).select_from(Quote)) or 0,
            "events": s.scalar(select(func.count()).select_from(WebhookEvent)) or 0,
            "ledger": s.scalar(select(func.count()).select_from(LedgerEntry)) or 0,
        }


def ledger_kinds(kit: Kit, order_id: str | None = None) -> list[str]:
    with kit.shop.db.read() as s:
        q = select(LedgerEntry.kind).order_by(LedgerEntry.id)
        if order_id is not None:
            q = q.where(LedgerEntry.order_id == order_id)
        return list(s.scalars(q).all())


def order_row(kit: Kit, order_id: str) -> Order:
    with kit.shop.db.read() as s:
        o = s.get(Order, order_id)
        assert o is not None
        s.expunge(o)
        return o


# ----------------------------------------------------------------------------- sandbox webhooks
def sandbox_event(
    kit: Kit,
    order: dict[str, Any],
    kind: str = "paid",
    *,
    event_id: str,
    amount_cents: int | None = None,
    currency: str = "usd",
    order_id: str | None = None,
) -> PaymentEvent:
    return PaymentEvent(
        event_id=event_id,
        kind=kind,  # type: ignore[arg-type]
        order_id=order_id or order["order_id"],
        reference="sbcs_test",
        payment_ref="sbpay_" + event_id if kind == "paid" else None,
        amount_cents=order["price_cents"] if amount_cents is None else amount_cents,
        currency=currency,
        occurred_at=kit.now(),
    )


def post_sandbox_event(
    kit: Kit,
    event: PaymentEvent,
    *,
    ts: int | None = None,
    header: str | None = None,
    body: bytes | None = None,
) -> Any:
    """Deliver ``event`` to ``/webhooks/sandbox`` signed with the shop's sandbox key."""
    payload = body if body is not None else kit.shop.payments.event_payload(event)  # type: ignore[attr-defined]
    stamp = int(kit.now().timestamp()) if ts is None else ts
    sig = header if header is not None else kit.shop.payments.sign_webhook(payload, stamp)  # type: ignore[attr-defined]
    headers = {"Content-Type": "application/json"}
    if sig:
        headers["X-Sandbox-Signature"] = sig
    return kit.web.post("/webhooks/sandbox", content=payload, headers=headers)


# ----------------------------------------------------------------------------- Stripe
def session_id_of(order: dict[str, Any]) -> str:
    return str(order["checkout_url"]).rstrip("/").split("/")[-1]


def stripe_body(
    event_type: str, session: dict[str, Any], *, event_id: str, created: datetime | None = None
) -> bytes:
    stamp = int(created.timestamp() if created else time.time())
    return stripe_event(event_type, session, created=stamp, event_id=event_id)


def deliver_stripe(
    kit: Kit, body: bytes, *, secret: str = WHSEC, ts: int | None = None, signed: bool = True
) -> Any:
    headers = {"Content-Type": "application/json"}
    if signed:
        stamp = int(kit.now().timestamp()) if ts is None else ts
        headers["Stripe-Signature"] = sign_webhook(body, secret, stamp)
    return kit.web.post("/webhooks/stripe", content=body, headers=headers)


def tamper(body: bytes, **session_fields: Any) -> bytes:
    event = json.loads(body)
    event["data"]["object"].update(session_fields)
    return json.dumps(event).encode()
