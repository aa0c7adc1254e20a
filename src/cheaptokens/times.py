"""UTC time: the clock, the day boundaries of Venice's epoch, and ISO-8601 "Z" text.

Every DIEM allowance and every key the shop sells lives inside one UTC day: it starts at
00:00 UTC and dies at the next 00:00 UTC (docs/venice-facts.md §2.3, §6).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def require_utc(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() != timedelta(0):
        raise ValueError("now must be an aware UTC datetime")


def day_start(now: datetime) -> datetime:
    """00:00 UTC of ``now``'s day."""
    require_utc(now)
    return datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)


def next_midnight(now: datetime) -> datetime:
    """The next 00:00 UTC strictly after ``now`` (at exactly 00:00 that is 24 h later)."""
    return day_start(now) + timedelta(days=1)


def day_end(day: date) -> datetime:
    """00:00 UTC after ``day``: when a key sold that day expires and its credit is lost."""
    return datetime.combine(day, time(0), tzinfo=UTC) + timedelta(days=1)


def iso_z(
    when: datetime, timespec: Literal["seconds", "milliseconds", "microseconds"] = "seconds"
) -> str:
    """``2026-11-26T09:30:00Z``: UTC ISO-8601 with a ``Z`` (``timespec`` as in isoformat)."""
    return when.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
