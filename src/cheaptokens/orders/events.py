"""Buyer events: what an order's webhook is told, recorded in the caller's transaction.

An event is a row of ``buyer_events`` written by the same transaction that decided it (a key
stored, a usage reading, a replacement begun), so it exists exactly when that change does;
the worker sends it afterwards (:mod:`cheaptokens.worker.deliveries`), signed following the
Standard Webhooks specification, and retries it with backoff. Each event is recorded at most
once per order and threshold: ``(order_id, once)`` is unique, and a second :func:`emit` of
the same ``once`` changes nothing.

The events (``type`` in the body; ``data`` always holds ``order_id``):

    key.ready          the order's key is stored and can be fetched (once per key)
    credit.low         80 % and 95 % of the credit used (``data.threshold``: 80 or 95)
    credit.exhausted   the credit is used up (or past the cap)
    key.expiring       60 and 15 minutes before the key's 00:00 UTC (``data.minutes``)
    key.replaced       the key is being replaced (``data.stage`` "started", with the
                       reason), the new key is ready ("done"), or no key could be made and
                       the unspent part is refunded ("refunded")

Only orders with a webhook get events. Other use cases (an x402 purchase, a top-up) record
events with :func:`emit` in their own transaction, and register a webhook with
:func:`register` after checking its URL outside the transaction
(:func:`cheaptokens.orders.webhooks.check`).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cheaptokens.db import upsert_insert
from cheaptokens.models import BuyerEvent, Order, OrderWebhook, WebhookAttempt
from cheaptokens.orders import state as st
from cheaptokens.secretbox import SecretBox
from cheaptokens.times import iso_z

KEY_READY: Final = "key.ready"
CREDIT_LOW: Final = "credit.low"
CREDIT_EXHAUSTED: Final = "credit.exhausted"
KEY_EXPIRING: Final = "key.expiring"
KEY_REPLACED: Final = "key.replaced"
KINDS: Final = (KEY_READY, CREDIT_LOW, CREDIT_EXHAUSTED, KEY_EXPIRING, KEY_REPLACED)

#: Percent of the credit used at which ``credit.low`` is sent (then ``credit.exhausted``).
LOW_THRESHOLDS: Final = (80, 95)
#: Minutes before the key's 00:00 UTC at which ``key.expiring`` is sent.
EXPIRING_MINUTES: Final = (60, 15)
#: The watch looks again soon when a key is this many percentage points below a threshold.
NEAR_POINTS: Final = 3

#: Delivery statuses.
PENDING: Final = "pending"
DELIVERED: Final = "delivered"
FAILED: Final = "failed"


def secret_context(order_id: str) -> str:
    """What a webhook secret is sealed to: its order (and not the key's own context)."""
    return f"{order_id}:webhook"


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_event_id() -> str:
    return "msg_" + secrets.token_hex(16)


# ----------------------------------------------------------------------------- webhooks
def register(
    session: Session,
    *,
    order_id: str,
    url: str,
    box: SecretBox,
    now: datetime,
    secret: str | None = None,
) -> str:
    """Set the order's webhook to ``url`` (already checked) with a new signing secret, which
    is returned to be shown once; an earlier URL and secret are replaced. Events not yet
    delivered go to the new URL, signed with the new secret. ``secret``: one the buyer was
    shown before (a standing order's, when it places its order)."""
    secret = secret or new_secret()
    sealed = box.seal(secret, context=secret_context(order_id))
    row = session.get(OrderWebhook, order_id, with_for_update=True)
    if row is None:
        session.add(
            OrderWebhook(order_id=order_id, url=url, secret=sealed, created_at=now, updated_at=now)
        )
    else:
        row.url, row.secret, row.updated_at = url, sealed, now
    return secret


def webhook_url(session: Session, *, order_id: str) -> str | None:
    row = session.get(OrderWebhook, order_id)
    return None if row is None else row.url


# ----------------------------------------------------------------------------- emit
def emit(
    session: Session,
    *,
    order_id: str,
    kind: str,
    now: datetime,
    data: Mapping[str, Any] | None = None,
    once: str | None = None,
) -> str | None:
    """Record event ``kind`` for the order's webhook in the caller's transaction; the worker
    sends it. ``once`` (default: ``kind``) makes it unique for the order: a second emit with
    the same ``once`` records nothing. Returns the event id (the ``webhook-id`` header), or
    None when the order has no webhook or the event was recorded before.

    ``data`` must be JSON-serialisable and hold no secret (it is sent in clear to the
    buyer's URL and kept in the delivery log)."""
    if session.get(OrderWebhook, order_id) is None:
        return None
    event_id = new_event_id()
    body = json.dumps(
        {
            "type": kind,
            "timestamp": iso_z(now, "milliseconds"),
            "data": {"order_id": order_id, **(data or {})},
        },
        separators=(",", ":"),
    )
    insert = upsert_insert(session)
    result = session.execute(
        insert(BuyerEvent)
        .values(
            id=event_id,
            order_id=order_id,
            kind=kind,
            once=(once or kind)[:120],
            body=body,
            created_at=now,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
        )
        .on_conflict_do_nothing(index_elements=[BuyerEvent.order_id, BuyerEvent.once])
        .returning(BuyerEvent.id)
    )
    # RETURNING, not rowcount: psycopg reports no row count for this statement.
    return result.scalar_one_or_none()


def _key_data(order: Order) -> dict[str, Any]:
    return {
        "key_last6": order.key_last6,
        "credit_cents": order.key_cap_cents,
        "expires_at": iso_z(order.key_expires_at) if order.key_expires_at else None,
    }


def key_ready(session: Session, *, order: Order, now: datetime) -> None:
    """The order's key is stored: fetch it with ``GET /api/orders/{id}``."""
    emit(
        session,
        order_id=order.id,
        kind=KEY_READY,
        now=now,
        data=_key_data(order),
        once=f"{KEY_READY}:{order.key_id}",
    )


def replacement_started(session: Session, *, order: Order, reason: str, now: datetime) -> None:
    """The order's key is being deleted and replaced (reissue or make-whole)."""
    emit(
        session,
        order_id=order.id,
        kind=KEY_REPLACED,
        now=now,
        data={
            "stage": "started",
            "reason": reason,
            "old_key_last6": order.key_last6,
            "used_cents": order.used_cents or 0,
        },
        once=f"{KEY_REPLACED}:started:{order.key_id}",
    )


def key_replaced(session: Session, *, order: Order, old_key_id: str | None, now: datetime) -> None:
    """The replacement key is stored: fetch it with ``GET /api/orders/{id}``."""
    emit(
        session,
        order_id=order.id,
        kind=KEY_REPLACED,
        now=now,
        data={
            "stage": "done",
            "reason": order.replace_reason,
            "spent_before_cents": order.spent_before_cents,
            **_key_data(order),
        },
        once=f"{KEY_REPLACED}:done:{order.key_id}",
    )


def replacement_refunded(session: Session, *, order: Order, reason: str, now: datetime) -> None:
    """No replacement key could be made: the unspent part is refunded."""
    emit(
        session,
        order_id=order.id,
        kind=KEY_REPLACED,
        now=now,
        data={
            "stage": "refunded",
            "reason": reason,
            "refund_due_cents": order.refund_due_cents,
        },
        once=f"{KEY_REPLACED}:refunded:{order.key_id}",
    )


# ----------------------------------------------------------------------------- usage
def used_of(order: Order) -> tuple[int, int]:
    """What the order's keys have used in all, and of how much: ``(used, credit)``."""
    return order.spent_before_cents + (order.used_cents or 0), order.credit_cents


def usage_seen(session: Session, *, order: Order, now: datetime) -> None:
    """A usage reading of the order's key was recorded: send the highest threshold it has
    newly crossed (a jump past several at once sends only the highest: usage only grows)."""
    used, credit = used_of(order)
    if credit <= 0 or used <= 0:
        return
    if used >= credit:
        emit(
            session,
            order_id=order.id,
            kind=CREDIT_EXHAUSTED,
            now=now,
            data={"used_cents": used, "credit_cents": credit, "remaining_cents": 0},
        )
        return
    for threshold in sorted(LOW_THRESHOLDS, reverse=True):
        if used * 100 >= threshold * credit:
            emit(
                session,
                order_id=order.id,
                kind=CREDIT_LOW,
                now=now,
                data={
                    "threshold": threshold,
                    "used_cents": used,
                    "credit_cents": credit,
                    "remaining_cents": credit - used,
                },
                once=f"{CREDIT_LOW}:{threshold}",
            )
            return


def near_threshold(order: Order) -> bool:
    """Is the order's usage within :data:`NEAR_POINTS` percentage points below one of its
    thresholds (so the watch should look again soon)?"""
    used, credit = used_of(order)
    if credit <= 0 or used >= credit:
        return False
    percent = used * 100 / credit
    return any(0 < t - percent <= NEAR_POINTS for t in (*LOW_THRESHOLDS, 100))


def has_webhook(session: Session, *, order_ids: list[str]) -> set[str]:
    if not order_ids:
        return set()
    return set(
        session.scalars(
            select(OrderWebhook.order_id).where(OrderWebhook.order_id.in_(order_ids))
        ).all()
    )


# ----------------------------------------------------------------------------- expiry
def expiring(session: Session, *, now: datetime) -> int:
    """Record ``key.expiring`` for live keys (of orders with a webhook) whose 00:00 UTC is
    at most 60, then 15 minutes away: only the nearest threshold that applies (a key bought
    at 23:50 gets the 15-minute one only). Returns how many were recorded."""
    horizon = now + timedelta(minutes=max(EXPIRING_MINUTES))
    rows = session.scalars(
        select(Order)
        .join(OrderWebhook, OrderWebhook.order_id == Order.id)
        .where(
            Order.status == st.FULFILLED,
            Order.key_expires_at > now,
            Order.key_expires_at <= horizon,
        )
    ).all()
    count = 0
    for order in rows:
        assert order.key_expires_at is not None
        left = order.key_expires_at - now
        minutes = min(m for m in EXPIRING_MINUTES if left <= timedelta(minutes=m))
        recorded = emit(
            session,
            order_id=order.id,
            kind=KEY_EXPIRING,
            now=now,
            data={
                "minutes": minutes,
                "expires_at": iso_z(order.key_expires_at),
                "seconds_left": int(left.total_seconds()),
            },
            once=f"{KEY_EXPIRING}:{minutes}:{order.key_expires_at.date().isoformat()}",
        )
        count += recorded is not None
    return count


# ----------------------------------------------------------------------------- sending
@dataclass(frozen=True, slots=True)
class Outgoing:
    """An event claimed for sending, with what signing it needs."""

    event_id: str
    order_id: str
    body: str
    attempt: int
    url: str
    sealed_secret: bytes


#: Seconds to wait before each retry (attempt 2, 3, …); after the last, the event failed.
RETRY_DELAYS: Final = (5, 30, 120, 600, 1800, 3600, 7200)


def claim_due(session: Session, *, now: datetime, limit: int, lease: timedelta) -> list[Outgoing]:
    """Lease up to ``limit`` due events, at most one per order (so one buyer's receiver
    cannot take every sender), oldest first; the caller commits right after."""
    rows = session.scalars(
        select(BuyerEvent)
        .where(
            BuyerEvent.status == PENDING,
            BuyerEvent.next_attempt_at <= now,
        )
        .order_by(BuyerEvent.next_attempt_at, BuyerEvent.created_at)
        .limit(limit * 4)
    ).all()
    out: list[Outgoing] = []
    seen: set[str] = set()
    for event in rows:
        if event.order_id in seen or len(out) >= limit:
            continue
        if event.locked_until is not None and event.locked_until > now:
            seen.add(event.order_id)
            continue
        hook = session.get(OrderWebhook, event.order_id)
        if hook is None:  # cannot happen (emit needs one); never send without one
            event.status = "dropped"
            continue
        # Fenced like a job: only the sender that set this lease may record the outcome.
        attempt = event.attempts + 1
        claimed = session.execute(
            update(BuyerEvent)
            .where(
                BuyerEvent.id == event.id,
                BuyerEvent.status == PENDING,
                BuyerEvent.attempts == event.attempts,
            )
            .values(attempts=attempt, locked_until=now + lease)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        seen.add(event.order_id)
        out.append(Outgoing(event.id, event.order_id, event.body, attempt, hook.url, hook.secret))
    return out


def record_attempt(
    session: Session,
    *,
    event_id: str,
    attempt: int,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    now: datetime,
) -> None:
    """The outcome of one try: a 2xx answer delivers the event; anything else schedules the
    next try (:data:`RETRY_DELAYS`) or, after the last, marks it failed."""
    event = session.get(BuyerEvent, event_id, with_for_update=True)
    if event is None or event.status != PENDING or event.attempts != attempt:
        return  # another sender took it over after our lease lapsed
    session.add(
        WebhookAttempt(
            event_id=event_id,
            at=now,
            attempt=attempt,
            status_code=status_code,
            error=(error or None) and error[:200],
            duration_ms=duration_ms,
        )
    )
    event.last_status = status_code
    event.last_error = (error or None) and error[:200]
    event.locked_until = None
    if status_code is not None and 200 <= status_code < 300:
        event.status = DELIVERED
        event.delivered_at = now
    elif attempt > len(RETRY_DELAYS):
        event.status = FAILED
    else:
        event.next_attempt_at = now + timedelta(seconds=RETRY_DELAYS[attempt - 1])


# ----------------------------------------------------------------------------- the log
@dataclass(frozen=True, slots=True)
class AttemptRow:
    at: datetime
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    event_id: str
    kind: str
    created_at: datetime
    status: str
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    body: dict[str, Any]
    tries: list[AttemptRow]


@dataclass(frozen=True, slots=True)
class DeliveryLog:
    url: str | None
    events: list[DeliveryRow]


def delivery_log(session: Session, *, order_id: str, limit: int = 100) -> DeliveryLog:
    """The order's webhook URL and its events, newest first, each with its attempts."""
    events = session.scalars(
        select(BuyerEvent)
        .where(BuyerEvent.order_id == order_id)
        .order_by(BuyerEvent.created_at.desc(), BuyerEvent.id)
        .limit(limit)
    ).all()
    ids = [e.id for e in events]
    tries: dict[str, list[AttemptRow]] = {i: [] for i in ids}
    if ids:
        for a in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.event_id.in_(ids))
            .order_by(WebhookAttempt.id)
        ):
            tries[a.event_id].append(
                AttemptRow(a.at, a.attempt, a.status_code, a.error, a.duration_ms)
            )
    return DeliveryLog(
        url=webhook_url(session, order_id=order_id),
        events=[
            DeliveryRow(
                event_id=e.id,
                kind=e.kind,
                created_at=e.created_at,
                status=e.status,
                attempts=e.attempts,
                next_attempt_at=e.next_attempt_at if e.status == PENDING else None,
                delivered_at=e.delivered_at,
                body=json.loads(e.body),
                tries=tries[e.id],
            )
            for e in events
        ],
    )
