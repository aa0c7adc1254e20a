"""The job queue: enqueue, claim (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), finish.

A claimed job carries a lease (``locked_until``). A worker that dies mid-job simply
lets the lease lapse and another worker picks the job up again, so every handler must
be idempotent (invariant 4 in docs/architecture.md). One job per (kind, order):
enqueueing twice is a no-op.

A handler that cannot finish now raises :class:`Retry`; a handler that writes its result
checks :func:`holds_lease` in the same transaction (a fencing check), so a worker whose lease
was taken over changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Update, or_, select, update
from sqlalchemy.orm import Session

from cheaptokens.db import dialect_name, upsert_insert
from cheaptokens.models import Job

PROVISION = "provision"
REFUND = "refund"
REFUND_STRAY = "refund_stray"
REPLACE_KEY = "replace_key"
#: top-ups: the job's ``order_id`` column holds the top-up's id
APPLY_TOPUP = "apply_topup"
REFUND_TOPUP = "refund_topup"
LEASE = timedelta(seconds=60)


class Retry(Exception):
    """Try the job again after ``delay`` seconds."""

    def __init__(self, reason: str, delay: float) -> None:
        super().__init__(reason)
        self.delay = delay


@dataclass(frozen=True, slots=True)
class Lease:
    """The job a worker holds while it runs it."""

    job_id: int
    worker: str


def enqueue(session: Session, *, kind: str, order_id: str, now: datetime, delay: float = 0) -> None:
    """Queue ``kind`` for ``order_id``; re-arm it if an earlier one already finished."""
    insert = upsert_insert(session)
    run_at = now + timedelta(seconds=delay)
    stmt = insert(Job).values(
        kind=kind, order_id=order_id, status="queued", run_at=run_at, attempts=0, created_at=now
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Job.kind, Job.order_id],
            set_={"status": "queued", "run_at": run_at, "attempts": 0},
            where=Job.status != "queued",
        )
    )


def claim(
    session: Session,
    *,
    worker: str,
    now: datetime,
    kinds: tuple[str, ...] | None = None,
    lease: timedelta = LEASE,
) -> Job | None:
    """Lease the next due job to ``worker``; the caller commits right after."""
    stmt = (
        select(Job)
        .where(
            Job.status == "queued",
            Job.run_at <= now,
            or_(Job.locked_until.is_(None), Job.locked_until < now),
        )
        .order_by(Job.run_at, Job.id)
        .limit(1)
    )
    if kinds:
        stmt = stmt.where(Job.kind.in_(kinds))
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    job = session.scalars(stmt).first()
    if job is None:
        return None
    job.locked_until = now + lease
    job.locked_by = worker
    job.attempts += 1
    return job


def _mine(job_id: int, worker: str) -> Update:
    # Fenced: a worker whose lease was taken over changes nothing.
    return update(Job).where(Job.id == job_id, Job.locked_by == worker, Job.status == "queued")


def finish(session: Session, *, job_id: int, worker: str) -> None:
    session.execute(_mine(job_id, worker).values(status="done", locked_until=None, last_error=None))


def retry_later(
    session: Session, *, job_id: int, worker: str, now: datetime, delay: float, error: str
) -> None:
    session.execute(
        _mine(job_id, worker).values(
            run_at=now + timedelta(seconds=delay), locked_until=None, last_error=error[:500]
        )
    )


def holds_lease(session: Session, lease: Lease, now: datetime) -> bool:
    """Does ``lease`` still hold its job? Locks the job row on PostgreSQL, so the caller's
    commit and a take-over cannot interleave."""
    stmt = select(Job).where(
        Job.id == lease.job_id, Job.locked_by == lease.worker, Job.locked_until > now
    )
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first() is not None


def claim_for(
    session: Session,
    *,
    kind: str,
    order_id: str,
    worker: str,
    now: datetime,
    lease: timedelta = LEASE,
) -> Job | None:
    """Lease ``order_id``'s job of ``kind`` to ``worker`` (a request that runs the job itself,
    e.g. an x402 purchase making its key), unless another worker holds it."""
    stmt = select(Job).where(
        Job.kind == kind,
        Job.order_id == order_id,
        Job.status == "queued",
        or_(Job.locked_until.is_(None), Job.locked_until < now),
    )
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    job = session.scalars(stmt).first()
    if job is None:
        return None
    job.locked_until = now + lease
    job.locked_by = worker
    job.attempts += 1
    return job
