"""The shop's tables (SQLAlchemy 2). Every amount is integer cents; every time is UTC.

``ledger`` is append-only: each change of money, capacity or key writes a row there
and no row is ever updated or deleted.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table_of(model: type[Base]) -> Table:
    """A model's Core table, for the hot path's statements built once (no ORM on the way)."""
    return cast(Table, model.__table__)


class Account(Base):
    """A Venice account the operator owns (its ADMIN key lives in configuration, not here)."""

    __tablename__ = "accounts"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    diem_allocation_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    balance_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: DIEM left this epoch at the last reading, in cents (negative once overshoot drained it)
    diem_balance_cents: Mapped[int | None] = mapped_column(BigInteger)
    #: Venice's key list at the last look: live keys, and keys created in the last minute
    venice_live_keys: Mapped[int | None] = mapped_column(Integer)
    venice_keys_last_minute: Mapped[int | None] = mapped_column(Integer)
    keys_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)


class AccountDay(Base):
    """One account's sellable credit on one UTC day, with the running totals.

    ``capacity - sold - reserved >= 0`` is kept by conditional UPDATEs
    (see :mod:`cheaptokens.inventory`), never by reading then writing.
    """

    __tablename__ = "account_days"
    account: Mapped[str] = mapped_column(ForeignKey("accounts.name"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    allocation_cents: Mapped[int] = mapped_column(BigInteger)
    capacity_cents: Mapped[int] = mapped_column(BigInteger)
    sold_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    #: credit kept off sale because the live balance cannot cover it (docs/money-safety.md)
    withheld_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    #: a day's rows for every account (the key is account first)
    __table_args__ = (Index("ix_account_days_day", "day"),)


class PricingParamsRow(Base):
    """A published parameter set of the price curve, by its hash."""

    __tablename__ = "pricing_params"
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime())
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())

    #: the set in force at a moment is found by its window (every price, quote and order)
    __table_args__ = (Index("ix_pricing_params_valid", "valid_from", "valid_until"),)


class PricingForecastRow(Base):
    """A demand forecast the nightly refit learned from the shop's own quotes and sales,
    with the data it used; ``pinned_at`` set: the operator pinned this version."""

    __tablename__ = "pricing_forecasts"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the days it learned from: [window_start, window_end)
    window_start: Mapped[date] = mapped_column(Date)
    window_end: Mapped[date] = mapped_column(Date, index=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    pinned_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Quote(Base):
    __tablename__ = "quotes"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime())
    day: Mapped[date] = mapped_column(Date)
    account: Mapped[str] = mapped_column(ForeignKey("accounts.name"))
    credit_cents: Mapped[int] = mapped_column(BigInteger)
    price_cents: Mapped[int] = mapped_column(BigInteger)
    remaining_cents: Mapped[int] = mapped_column(BigInteger)  # pooled remaining at quote time
    params_hash: Mapped[str] = mapped_column(ForeignKey("pricing_params.hash"))
    #: open (holds a reservation) | ordered (reservation moved to an order) | released
    status: Mapped[str] = mapped_column(String(16), default="open")
    #: who asked (a hash of the address): one client may hold only so much unpaid
    client: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_quotes_open_until", "status", "valid_until"),
        # Only open quotes: the holds per client read nothing else, and the nightly prune of
        # released quotes then has no entries here to find among a year's clients.
        Index(
            "ix_quotes_client_open",
            "client",
            "valid_until",
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_quotes_created_at", "created_at"),  # the day's settled quotes
    )


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24), index=True)
    quote_id: Mapped[str] = mapped_column(ForeignKey("quotes.id"), unique=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    account: Mapped[str] = mapped_column(ForeignKey("accounts.name"))
    credit_cents: Mapped[int] = mapped_column(BigInteger)
    price_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    #: does the order still hold capacity (reserved while awaiting payment, sold once paid)?
    holds: Mapped[str] = mapped_column(String(16), default="reserved")  # reserved|sold|none
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    checkout_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: a random UUID the client chose; scoped to the client (see the table's constraint)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(64))

    payment_provider: Mapped[str] = mapped_column(String(16))
    payment_reference: Mapped[str | None] = mapped_column(String(255))
    checkout_url: Mapped[str | None] = mapped_column(Text)
    payment_ref: Mapped[str | None] = mapped_column(String(255))
    paid_cents: Mapped[int | None] = mapped_column(BigInteger)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    #: which models the key may call: "private" (modelPrivacy PRIVATE_ONLY) or "all"
    key_models: Mapped[str] = mapped_column(String(8), default="private", server_default="all")
    provision_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    key_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: the current key's cap (None: the order's credit); lower after a replacement
    key_credit_cents: Mapped[int | None] = mapped_column(BigInteger)
    #: credit the order's earlier keys used before they were replaced
    spent_before_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: a replacement key is being made (the old key is deleted first), and why
    replace_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    replace_reason: Mapped[str | None] = mapped_column(Text)
    key_last6: Mapped[str | None] = mapped_column(String(6))
    key_secret: Mapped[bytes | None] = mapped_column(LargeBinary)  # AES-GCM, until received
    key_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    key_received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    key_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    used_cents: Mapped[int | None] = mapped_column(BigInteger)
    usage_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    refund_ref: Mapped[str | None] = mapped_column(String(255))
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: what a refund pays back (None: everything paid); less for a pro-rata refund
    refund_due_cents: Mapped[int | None] = mapped_column(BigInteger)
    failure_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("client", "idempotency_key"),
        Index("ix_orders_created_at", "created_at"),  # recent orders
        Index("ix_orders_client_status", "client", "status"),  # holds and strikes per client
        Index("ix_orders_account_status", "account", "status"),  # an account's live keys
        Index("ix_orders_status_day", "status", "day"),  # sold per day (the dashboard)
    )

    @property
    def key_cap_cents(self) -> int:
        """The current key's cap in cents."""
        return self.credit_cents if self.key_credit_cents is None else self.key_credit_cents


class LedgerEntry(Base):
    """Append-only journal of every change of money, capacity or key."""

    __tablename__ = "ledger"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[str | None] = mapped_column(String(40), index=True)
    quote_id: Mapped[str | None] = mapped_column(String(40))
    account: Mapped[str | None] = mapped_column(String(64))
    day: Mapped[date | None] = mapped_column(Date)
    credit_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    money_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    #: key creations per account in the last minute (Venice's 20 a minute)
    __table_args__ = (Index("ix_ledger_kind_account_at", "kind", "account", "at"),)


class Job(Base):
    """Work for the worker; claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|done|dead
    run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    locked_by: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("kind", "order_id"),
        Index("ix_jobs_due", "status", "run_at"),
    )


class WebhookEvent(Base):
    """Provider events already handled, so a re-delivery changes nothing."""

    __tablename__ = "webhook_events"
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[str | None] = mapped_column(String(40))
    #: indexed: the nightly prune forgets events past the provider's retry window
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Alert(Base):
    """Something an operator must look at (failed provisioning, reconciliation finds)."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    account: Mapped[str | None] = mapped_column(String(64))
    order_id: Mapped[str | None] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_alerts_kind_account_at", "kind", "account", "at"),)


class PoolKey(Base):
    """A pre-created key held in reserve: cap 0 (it can spend nothing), expiring at the next
    00:00 UTC, never counted as sold capacity. At a sale its cap is raised with
    ``PATCH /api_keys`` — no creation needed, so a burst is not held up by Venice's
    20-creations-a-minute limit."""

    __tablename__ = "pool_keys"
    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(ForeignKey("accounts.name"))
    day: Mapped[date] = mapped_column(Date)
    secret: Mapped[bytes] = mapped_column(LargeBinary)  # AES-GCM, bound to key_id
    last6: Mapped[str] = mapped_column(String(6))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: ready | claimed (an order is raising its cap) | sold | deleted
    status: Mapped[str] = mapped_column(String(16), default="ready")
    order_id: Mapped[str | None] = mapped_column(String(40), unique=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_pool_keys_ready", "account", "day", "status"),
        Index("ix_pool_keys_due", "status", "expires_at"),
    )


class Topup(Base):
    """More credit for a sold key: paid like an order, then the same key's cap is raised."""

    __tablename__ = "topups"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40), index=True)
    quote_id: Mapped[str] = mapped_column(ForeignKey("quotes.id"), unique=True)
    #: the key's account: the credit is reserved and sold there
    account: Mapped[str] = mapped_column(ForeignKey("accounts.name"))
    day: Mapped[date] = mapped_column(Date)
    credit_cents: Mapped[int] = mapped_column(BigInteger)
    price_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    #: awaiting_payment | cancelled | paid | applied | refunded | failed
    status: Mapped[str] = mapped_column(String(24))
    holds: Mapped[str] = mapped_column(String(16), default="reserved")  # reserved|sold|none
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    checkout_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(64))
    payment_provider: Mapped[str] = mapped_column(String(16))
    payment_reference: Mapped[str | None] = mapped_column(String(255))
    checkout_url: Mapped[str | None] = mapped_column(Text)
    payment_ref: Mapped[str | None] = mapped_column(String(255))
    paid_cents: Mapped[int | None] = mapped_column(BigInteger)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: the key's cap this top-up raised the order to (set before Venice is asked)
    raised_to_cents: Mapped[int | None] = mapped_column(BigInteger)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refund_ref: Mapped[str | None] = mapped_column(String(255))
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failure_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("order_id", "idempotency_key"),
        Index("ix_topups_status_expires", "status", "checkout_expires_at"),
    )


class StrayPayment(Base):
    """A second, different payment for an order that was already paid: refunded in full."""

    __tablename__ = "stray_payments"
    payment_ref: Mapped[str] = mapped_column(String(255), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    refund_ref: Mapped[str | None] = mapped_column(String(255))
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AdminSession(Base):
    """A logged-in operator. The browser's cookie holds a random id; this table only its
    SHA-256, so a copy of the database opens no dashboard. Logging out deletes the row; a
    session also ends when idle too long, at ``expires_at``, or when the password setting
    changes (``password_fp`` no longer matches)."""

    __tablename__ = "admin_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: HMAC of the user name and password setting at login (not the password)
    password_fp: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    #: who logged in (a hash of the address, as elsewhere)
    client: Mapped[str | None] = mapped_column(String(64))


class OperatorAction(Base):
    """The audit log: what an operator session did, written in the same transaction as the
    action itself (:func:`cheaptokens.operators.audited`). Never updated or deleted; it
    outlives the session, which it names by the session id's hash."""

    __tablename__ = "operator_actions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    session_hash: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class X402Payment(Base):
    """An x402 payment: an EIP-3009 authorization a wallet signed to the operator's address.

    Keyed by the authorization itself (network, asset, payer, nonce), so one authorization
    pays for one order at most: a replayed payment finds its row and is refused. The signed
    payload is kept until it is settled (or voided: then the shop never settles it)."""

    __tablename__ = "x402_payments"
    #: SHA-256 of "network|asset|payer|nonce" (lower case)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    payer: Mapped[str] = mapped_column(String(42), index=True)
    nonce: Mapped[str] = mapped_column(String(66))
    order_id: Mapped[str | None] = mapped_column(String(40), index=True)
    standing_id: Mapped[str | None] = mapped_column(String(40), index=True)
    #: the top-up it pays for (its order is the top-up's; ``order_id`` stays None)
    topup_id: Mapped[str | None] = mapped_column(String(40), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    valid_before: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the PaymentPayload and the PaymentRequirements it pays, as the facilitator wants them
    payload: Mapped[str] = mapped_column(Text)
    requirements: Mapped[str] = mapped_column(Text)
    #: verifying | authorized (verified, not settled) | settled | void (never to be settled)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    settle_attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: a settle call whose answer never came: the money may have moved
    settle_unknown: Mapped[bool] = mapped_column(default=False)
    transaction: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SiwxNonce(Base):
    """A sign-in-with-x nonce already used: a replayed sign-in finds it and is refused."""

    __tablename__ = "siwx_nonces"
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(42))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: after this the sign-in is refused as expired anyway: the row may go
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class StandingOrder(Base):
    """ "Buy $X of credit the first moment the price is at or below P (or the discount at
    least D %), before T", backed by an x402 authorization of $X valid until T."""

    __tablename__ = "standing_orders"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    wallet: Mapped[str] = mapped_column(String(42), index=True)
    day: Mapped[date] = mapped_column(Date)
    #: the credit asked for, X (the authorization's amount is its X402Payment's amount_cents)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    #: the condition: price per $1 of credit in cents at most this (decimal text) …
    max_price_cents: Mapped[str | None] = mapped_column(String(32))
    #: … or the discount at least this many percent (decimal text)
    min_discount_percent: Mapped[str | None] = mapped_column(String(32))
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime())
    key_models: Mapped[str] = mapped_column(String(8), default="private")
    #: waiting | fired (its order was placed) | cancelled | expired | failed (see
    #: cheaptokens.orders.standing)
    status: Mapped[str] = mapped_column(String(16))
    payment_id: Mapped[str] = mapped_column(String(64), unique=True)
    order_id: Mapped[str | None] = mapped_column(String(40), unique=True)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    #: the webhook's signing secret, sealed (shown to the agent once, at creation)
    webhook_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_standing_orders_open", "status", "valid_until"),)


class OrderWebhook(Base):
    """Where a buyer asked the shop to send the order's events (docs: "Alerts"). The signing
    secret is sealed with the shop's data key, bound to the order id (shown once, at order
    time or when the buyer sets a new URL)."""

    __tablename__ = "order_webhooks"
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[bytes] = mapped_column(LargeBinary)  # AES-GCM, "whsec_…"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BuyerEvent(Base):
    """An event for an order's webhook (Standard Webhooks): recorded in the transaction that
    decided it, at most once per ``(order_id, once)`` — one per threshold — and sent by the
    worker with retries. ``body`` is the exact JSON sent each time; ``id`` its ``webhook-id``."""

    __tablename__ = "buyer_events"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    kind: Mapped[str] = mapped_column(String(32))
    #: what makes the event unique for its order ("credit.low:80", "key.ready:<key id>")
    once: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: pending (to send) | delivered | failed (retries exhausted) | dropped (no webhook)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: a worker is sending it until then (a crashed sender's lease lapses)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        UniqueConstraint("order_id", "once"),
        Index("ix_buyer_events_due", "status", "next_attempt_at"),
    )


class WebhookAttempt(Base):
    """One try at sending a :class:`BuyerEvent` (the delivery log the key page shows)."""

    __tablename__ = "webhook_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("buyer_events.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempt: Mapped[int] = mapped_column(Integer)
    #: the receiver's HTTP status; None when no answer came (refused, timed out, …)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(200))
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class WorkerHeartbeat(Base):
    """The last sign of life of each worker (``cheaptokens worker`` or the worker thread of
    ``cheaptokens serve``): written every few seconds by its upkeep loop, read by ``/readyz``
    and ``/metrics``. Rows of workers silent for a day are deleted by the others."""

    __tablename__ = "worker_heartbeats"
    worker: Mapped[str] = mapped_column(String(96), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
