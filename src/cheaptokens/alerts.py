"""Alerts: what an operator must look at (the dashboard lists them, newest first)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from cheaptokens.models import Alert


def raise_alert(
    session: Session,
    *,
    kind: str,
    message: str,
    now: datetime,
    order_id: str | None = None,
    account: str | None = None,
) -> None:
    """Record an alert inside the caller's transaction."""
    session.add(Alert(at=now, kind=kind, order_id=order_id, account=account, message=message))
