"""Retention: what the shop forgets once it is of no more use, so cost stays flat with time.

Kept for good: orders, top-ups, stray payments, the ledger, published price sets (every quote
stays recomputable) and the operators' audit log. Pruned, each after its own number of days:

* quotes that lapsed without becoming an order (a quote that became one stays: the order
  names it),
* provider webhook events already applied, once past the provider's retry window (Stripe
  retries for up to three days; a later re-delivery of a pruned event id would be applied
  again, so keep them longer than that),
* finished jobs, pool keys deleted or sold, alerts, and ended operator sessions.

Deletes run in batches, so no transaction holds a table for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cheaptokens.models import AdminSession, Alert, Job, PoolKey, Quote, WebhookEvent


@dataclass(frozen=True, slots=True)
class Retention:
    quotes_days: int
    webhook_events_days: int
    jobs_days: int
    pool_keys_days: int
    alerts_days: int
    sessions_days: int


def _prunable(policy: Retention, now: datetime) -> dict[str, tuple[Any, Any, Any]]:
    """table name → (model, its primary key column, the condition for rows to forget)."""

    def ago(days: int) -> datetime:
        return now - timedelta(days=days)

    return {
        "quotes": (
            Quote,
            Quote.id,
            (Quote.status == "released") & (Quote.valid_until < ago(policy.quotes_days)),
        ),
        "webhook_events": (
            WebhookEvent,
            WebhookEvent.event_id,
            WebhookEvent.received_at < ago(policy.webhook_events_days),
        ),
        "jobs": (Job, Job.id, (Job.status == "done") & (Job.run_at < ago(policy.jobs_days))),
        "pool_keys": (
            PoolKey,
            PoolKey.key_id,
            PoolKey.status.in_(("deleted", "sold"))
            & (PoolKey.expires_at < ago(policy.pool_keys_days)),
        ),
        "alerts": (Alert, Alert.id, Alert.at < ago(policy.alerts_days)),
        "admin_sessions": (
            AdminSession,
            AdminSession.id_hash,
            AdminSession.expires_at < ago(policy.sessions_days),
        ),
    }


def prune_batch(
    session: Session, *, policy: Retention, now: datetime, batch: int = 1000, dry_run: bool = False
) -> dict[str, int]:
    """Forget up to ``batch`` rows of each table; how many (would have) gone, per table."""
    gone = {}
    for name, (model, key, condition) in _prunable(policy, now).items():
        ids = session.scalars(select(key).where(condition).limit(batch)).all()
        if ids and not dry_run:
            session.execute(delete(model).where(key.in_(ids)))
        gone[name] = len(ids)
    return gone
