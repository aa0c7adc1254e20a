"""The shop's operators in the database: their sessions, the audit log of what they did, and
alerts about their logins.

**Sessions.** A login makes a random session id (``ctop_…``, in the browser's HttpOnly
cookie); the ``admin_sessions`` table keeps only its SHA-256 with a fingerprint of the
password setting. A session ends when the operator logs out (the row is deleted), when it was
idle longer than ``CHEAPTOKENS_ADMIN_IDLE_SECONDS``, at its absolute end
(``CHEAPTOKENS_ADMIN_SESSION_SECONDS`` after the login), or when the password setting
changes (the fingerprint no longer matches).

**Operator actions.** Everything an operator changes runs inside :func:`audited`: one
transaction that checks the session still exists, runs the action and appends its
``operator_actions`` row (at, session hash, action, target, detail). If the action fails,
neither happens. An action run with the ``cheaptokens`` command (a refund, a forecast pin)
runs inside :func:`audited` too and its row names ``cli:<system user>``. The web layer
runs no SQL; it calls these functions with the shop's :class:`~cheaptokens.db.Database`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import sessionmaker

from cheaptokens.alerts import raise_alert
from cheaptokens.db import Database
from cheaptokens.errors import ShopError
from cheaptokens.models import AdminSession, OperatorAction

#: The alert kind of a locked-out operator login (too many failed attempts).
LOGIN_LOCKED = "admin_login_locked"
#: Every session id starts so: log filters can recognise (and redact) one.
SESSION_PREFIX = "ctop_"
#: An audit row of an action run with the ``cheaptokens`` command names ``cli:<user>``.
SHELL_PREFIX = "cli:"


class SessionEnded(ShopError):
    """The operator session is gone (logged out, idle, expired, or the password changed)."""

    status = 401
    code = "session_ended"


@dataclass(frozen=True, slots=True)
class OperatorSession:
    id_hash: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime

    @property
    def label(self) -> str:
        """How the dashboard names the session (the start of its hash, never its id)."""
        return self.id_hash[:12]


@dataclass(frozen=True, slots=True)
class ActionRow:
    at: datetime
    session: str  # the start of the session's hash, or cli:<user>
    action: str
    target: str | None
    detail: dict[str, Any]


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _view(row: AdminSession) -> OperatorSession:
    return OperatorSession(row.id_hash, row.created_at, row.last_seen_at, row.expires_at)


def _valid(row: AdminSession, *, fingerprint: str, now: datetime, idle_seconds: int) -> bool:
    return (
        hmac.compare_digest(row.password_fp, fingerprint)
        and now < row.expires_at
        and now - row.last_seen_at <= timedelta(seconds=idle_seconds)
    )


# ------------------------------------------------------------------------------ sessions
def open_session(
    db: Database,
    *,
    fingerprint: str,
    client: str | None,
    now: datetime,
    lifetime_seconds: int,
    replaces: str | None = None,
) -> tuple[str, OperatorSession]:
    """A new session and its ``login`` audit row, in one transaction. Returns the id for the
    cookie (shown to the browser once, stored nowhere). ``replaces`` (the browser's previous
    cookie) is ended, and every session past its end is swept."""
    session_id = SESSION_PREFIX + secrets.token_urlsafe(32)
    digest = session_hash(session_id)
    with db.begin() as session:
        session.execute(delete(AdminSession).where(AdminSession.expires_at <= now))
        if replaces:
            session.execute(
                delete(AdminSession).where(AdminSession.id_hash == session_hash(replaces))
            )
        row = AdminSession(
            id_hash=digest,
            password_fp=fingerprint,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=lifetime_seconds),
            client=client,
        )
        session.add(row)
        session.add(
            OperatorAction(
                at=now, session_hash=digest, action="login", target=None, detail={"client": client}
            )
        )
        return session_id, _view(row)


def current_session(
    db: Database, *, cookie: str | None, fingerprint: str, now: datetime, idle_seconds: int
) -> OperatorSession | None:
    """The live session ``cookie`` names, its last use moved to ``now``; None if there is
    none. A session found idle, expired or made under another password is deleted."""
    if not cookie or not cookie.startswith(SESSION_PREFIX) or len(cookie) > 128:
        return None
    digest = session_hash(cookie)
    with db.read() as session:  # most bad cookies are answered without taking a write lock
        if session.get(AdminSession, digest) is None:
            return None
    with db.begin() as session:
        row = session.get(AdminSession, digest, with_for_update=True)
        if row is None:
            return None
        if not _valid(row, fingerprint=fingerprint, now=now, idle_seconds=idle_seconds):
            session.delete(row)
            return None
        row.last_seen_at = max(row.last_seen_at, now)
        return _view(row)


def end_session(db: Database, *, id_hash: str) -> None:
    """Log one session out (its cookie opens nothing any more)."""
    with db.begin() as session:
        session.execute(delete(AdminSession).where(AdminSession.id_hash == id_hash))


def end_all_sessions(db: Database) -> int:
    """Log every operator session out; returns how many there were."""
    with db.begin() as session:
        count = session.scalar(select(func.count()).select_from(AdminSession)) or 0
        session.execute(delete(AdminSession))
        return count


def live_sessions(
    db: Database, *, fingerprint: str, now: datetime, idle_seconds: int
) -> list[OperatorSession]:
    """The sessions that would still open the dashboard, newest first."""
    with db.read() as session:
        rows = session.scalars(select(AdminSession).order_by(AdminSession.created_at.desc()))
        return [
            _view(r)
            for r in rows
            if _valid(r, fingerprint=fingerprint, now=now, idle_seconds=idle_seconds)
        ]


# ------------------------------------------------------------------------------ actions
@contextmanager
def audited(
    db: Database,
    *,
    session: OperatorSession | None = None,
    user: str | None = None,
    action: str,
    target: str | None,
    detail: dict[str, Any] | None,
    now: datetime,
) -> Iterator[Database]:
    """One transaction for an operator action and its audit row.

    Yields a :class:`Database` bound to that transaction: pass it to the use cases that do
    the action (``flows.refund_order(db=db, …)``). Their own ``begin()`` blocks become
    savepoints inside it, so the action and its ``operator_actions`` row commit together or
    not at all. Raises :class:`SessionEnded` if the session was ended meanwhile (a logout in
    another tab); anything the action raises rolls everything back and propagates.

    The action is a dashboard ``session``'s, or a system ``user``'s who ran the
    ``cheaptokens`` command (no session to check: whoever runs it holds the settings); the
    row names the session's hash, or ``cli:<user>``.
    """
    if (session is None) == (user is None):
        raise TypeError("audited() takes exactly one of session and user")
    with db.begin() as outer:
        if session is not None and (
            outer.get(AdminSession, session.id_hash, with_for_update=True) is None
        ):
            raise SessionEnded("your operator session has ended; log in again")
        who = session.id_hash if session is not None else f"{SHELL_PREFIX}{user}"
        joined = sessionmaker(
            bind=outer.connection(),
            expire_on_commit=False,
            join_transaction_mode="create_savepoint",
        )
        yield Database(writes=joined, reads=joined)
        outer.add(
            OperatorAction(
                at=now,
                session_hash=who[:64],
                action=action[:32],
                target=target[:255] if target else None,
                detail=detail,
            )
        )


def recent_actions(db: Database, *, limit: int = 50) -> list[ActionRow]:
    """The audit log, newest first."""
    with db.read() as session:
        rows = session.scalars(
            select(OperatorAction)
            .order_by(OperatorAction.at.desc(), OperatorAction.id.desc())
            .limit(limit)
        )
        return [
            ActionRow(
                r.at,
                r.session_hash if r.session_hash.startswith(SHELL_PREFIX) else r.session_hash[:12],
                r.action,
                r.target,
                dict(r.detail or {}),
            )
            for r in rows
        ]


# ------------------------------------------------------------------------------- alerts
def alert_login_locked(db: Database, *, message: str, now: datetime) -> None:
    """Tell the dashboard that someone keeps guessing the operator's password."""
    with db.begin() as session:
        raise_alert(session, kind=LOGIN_LOCKED, message=message, now=now)
