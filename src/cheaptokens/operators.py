"""What concerns the shop's operators, in the database: alerts about their logins.

The web layer runs no SQL; the dashboard calls these functions with the shop's
:class:`~cheaptokens.db.Database`.
"""

from __future__ import annotations

from datetime import datetime

from cheaptokens.alerts import raise_alert
from cheaptokens.db import Database

#: The alert kind of a locked-out operator login (too many failed attempts).
LOGIN_LOCKED = "admin_login_locked"


def alert_login_locked(db: Database, *, message: str, now: datetime) -> None:
    """Tell the dashboard that someone keeps guessing the operator's password."""
    with db.begin() as session:
        raise_alert(session, kind=LOGIN_LOCKED, message=message, now=now)
