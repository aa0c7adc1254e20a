"""What operations watch: the figures ``/metrics`` exposes and the checks ``/readyz`` makes,
and the worker heartbeat both read.

Every function takes a session and reads (``beat`` writes the caller's heartbeat row). The
web layer runs no SQL: ``web/metrics.py`` and ``web/health.py`` call these.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import case, column, delete, func, inspect, select, table, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cheaptokens.db import Database, upsert_insert
from cheaptokens.models import AccountDay, Job, Order, PoolKey, Topup, WorkerHeartbeat
from cheaptokens.orders import state as st
from cheaptokens.orders.views import SOLD_STATUSES

#: Top-ups whose money the shop keeps (paid, and the key's cap raised or being raised).
TOPUP_SOLD = ("paid", "applied")
#: The buyer-webhook events table (docs/operations.md, "Metrics"): read when it exists.
BUYER_EVENTS = "buyer_events"
#: A worker's heartbeat row is deleted once it has been silent this long.
FORGET_WORKER_AFTER = timedelta(days=1)


# ----------------------------------------------------------------------------- for the web
def database_revision(*, db: Database) -> str | None:
    """Reach the database and say which migration it is at (raises if it is unreachable)."""
    with db.read() as session:
        ping(session)
        return schema_revision(session)


def read_heartbeats(*, db: Database, now: datetime, fresh_within: timedelta) -> Heartbeats:
    with db.read() as session:
        return heartbeats(session, now=now, fresh_within=fresh_within)


def read_snapshot(*, db: Database, now: datetime) -> OpsSnapshot:
    with db.read() as session:
        return snapshot(session, now=now)


# ----------------------------------------------------------------------------- readiness
def ping(session: Session) -> None:
    """One round trip to the database (raises if it cannot be reached)."""
    session.execute(select(1)).scalar_one()


def schema_revision(session: Session) -> str | None:
    """The migration the database is at (Alembic's ``alembic_version``); None if unmigrated."""
    version = table("alembic_version", column("version_num"))
    try:
        return session.execute(select(version.c.version_num)).scalar()
    except SQLAlchemyError:
        return None


# ----------------------------------------------------------------------------- heartbeats
def beat(session: Session, *, worker: str, started_at: datetime, now: datetime) -> None:
    """Record that ``worker`` is alive at ``now``; forget workers silent for a day."""
    insert = upsert_insert(session)
    session.execute(
        insert(WorkerHeartbeat)
        .values(worker=worker[:96], started_at=started_at, beat_at=now)
        .on_conflict_do_update(index_elements=[WorkerHeartbeat.worker], set_={"beat_at": now})
    )
    session.execute(
        delete(WorkerHeartbeat).where(WorkerHeartbeat.beat_at < now - FORGET_WORKER_AFTER)
    )


@dataclass(frozen=True, slots=True)
class Heartbeats:
    #: the newest heartbeat of any worker (None: no worker ever beat, or none for a day)
    newest: datetime | None
    #: workers whose last heartbeat is within the freshness window
    fresh: int

    def age_seconds(self, now: datetime) -> float | None:
        return None if self.newest is None else max(0.0, (now - self.newest).total_seconds())


def heartbeats(session: Session, *, now: datetime, fresh_within: timedelta) -> Heartbeats:
    newest, fresh = session.execute(
        select(
            func.max(WorkerHeartbeat.beat_at),
            func.count().filter(WorkerHeartbeat.beat_at >= now - fresh_within),
        )
    ).one()
    if newest is not None and newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    return Heartbeats(newest=newest, fresh=int(fresh or 0))


# ----------------------------------------------------------------------------- metrics
@dataclass(frozen=True, slots=True)
class Stock:
    """One account's stock today, in cents."""

    account: str
    capacity: int
    sold: int
    held: int
    withheld: int
    #: what the account's live keys may still spend (cap − usage)
    liability: int

    @property
    def available(self) -> int:
        return max(0, self.capacity - self.sold - self.held - self.withheld)


@dataclass(frozen=True, slots=True)
class JobCounts:
    kind: str
    #: waiting to run (due now or later)
    queued: int
    #: queued again after a failed attempt, or given up
    failed: int


@dataclass
class OpsSnapshot:
    day: date
    orders_sold: int = 0
    credit_sold_cents: int = 0
    revenue_cents: int = 0
    topups_sold: int = 0
    topup_credit_cents: int = 0
    topup_revenue_cents: int = 0
    #: today's orders by status
    orders: dict[str, int] = field(default_factory=dict)
    #: orders whose refund failed (an operator must look), any day
    orders_failed: int = 0
    stock: list[Stock] = field(default_factory=list)
    #: (account, status) -> keys in the warm pool today
    pool: dict[tuple[str, str], int] = field(default_factory=dict)
    jobs: list[JobCounts] = field(default_factory=list)
    #: seconds the oldest due job has waited (0 when none is due)
    oldest_due_seconds: float = 0.0
    #: buyer-webhook events by status, when the shop has that table (else None)
    webhook_events: dict[str, int] | None = None


def snapshot(session: Session, *, now: datetime) -> OpsSnapshot:
    """Everything ``/metrics`` reads from the database, in a handful of indexed queries."""
    day = now.date()
    snap = OpsSnapshot(day=day)
    credit, revenue, count = session.execute(
        select(
            func.coalesce(func.sum(Order.credit_cents), 0),
            func.coalesce(func.sum(Order.price_cents), 0),
            func.count(Order.id),
        ).where(Order.day == day, Order.status.in_(SOLD_STATUSES))
    ).one()
    snap.credit_sold_cents, snap.revenue_cents, snap.orders_sold = (
        int(credit),
        int(revenue),
        int(count),
    )
    credit, revenue, count = session.execute(
        select(
            func.coalesce(func.sum(Topup.credit_cents), 0),
            func.coalesce(func.sum(Topup.price_cents), 0),
            func.count(Topup.id),
        ).where(Topup.day == day, Topup.status.in_(TOPUP_SOLD))
    ).one()
    snap.topup_credit_cents, snap.topup_revenue_cents, snap.topups_sold = (
        int(credit),
        int(revenue),
        int(count),
    )
    snap.orders = {
        status: int(n)
        for status, n in session.execute(
            select(Order.status, func.count()).where(Order.day == day).group_by(Order.status)
        )
    }
    snap.orders_failed = int(
        session.execute(select(func.count()).where(Order.status == st.FAILED)).scalar() or 0
    )
    snap.stock = _stock(session, day=day, now=now)
    snap.pool = {
        (account, status): int(n)
        for account, status, n in session.execute(
            select(PoolKey.account, PoolKey.status, func.count())
            .where(PoolKey.day == day)
            .group_by(PoolKey.account, PoolKey.status)
        )
    }
    snap.jobs, snap.oldest_due_seconds = _jobs(session, now=now)
    snap.webhook_events = _webhook_events(session)
    return snap


def _stock(session: Session, *, day: date, now: datetime) -> list[Stock]:
    cap = func.coalesce(Order.key_credit_cents, Order.credit_cents)
    unspent = cap - func.coalesce(Order.used_cents, 0)
    liability: dict[str, int | None] = dict(
        session.execute(
            select(Order.account, func.sum(case((unspent > 0, unspent), else_=0)))
            .where(
                Order.status == st.FULFILLED,
                Order.key_id.is_not(None),
                Order.key_deleted_at.is_(None),
                Order.key_expires_at > now,
            )
            .group_by(Order.account)
        ).all()
    )
    rows = session.scalars(
        select(AccountDay).where(AccountDay.day == day).order_by(AccountDay.account)
    ).all()
    return [
        Stock(
            account=r.account,
            capacity=r.capacity_cents,
            sold=r.sold_cents,
            held=r.reserved_cents,
            withheld=r.withheld_cents,
            liability=int(liability.get(r.account) or 0),
        )
        for r in rows
    ]


def _jobs(session: Session, *, now: datetime) -> tuple[list[JobCounts], float]:
    queued: dict[str, int] = defaultdict(int)
    failed: dict[str, int] = defaultdict(int)
    rows = session.execute(
        select(Job.kind, Job.status, Job.last_error.is_not(None), func.count())
        .where(Job.status != "done")
        .group_by(Job.kind, Job.status, Job.last_error.is_not(None))
    ).all()
    for kind, status, has_error, n in rows:
        if status == "queued":
            queued[kind] += int(n)
        if status != "queued" or has_error:
            failed[kind] += int(n)
    oldest = session.execute(
        select(func.min(Job.run_at)).where(Job.status == "queued", Job.run_at <= now)
    ).scalar()
    waited = 0.0
    if oldest is not None:
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        waited = max(0.0, (now - oldest).total_seconds())
    kinds = sorted(set(queued) | set(failed))
    return [JobCounts(k, queued.get(k, 0), failed.get(k, 0)) for k in kinds], waited


def _webhook_events(session: Session) -> dict[str, int] | None:
    """Buyer-webhook events by status (pending, delivered, failed, dropped), read from the
    ``buyer_events`` table when the shop has it; None when it does not."""
    if not inspect(session.get_bind()).has_table(BUYER_EVENTS):
        return None
    rows = session.execute(text("SELECT status, COUNT(*) FROM buyer_events GROUP BY status")).all()
    return {str(status): int(n) for status, n in rows}
