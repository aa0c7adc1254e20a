"""The sandbox's injectable clock.

Everything time-dependent in the sandbox (key expiry, the DIEM refill at 00:00 UTC,
limit windows, the 20-per-minute creation budget, the error budget) asks this clock,
so tests can jump to 23:59:59 and then to midnight without sleeping.

A *frozen* clock stays where it was put; a running one keeps an offset from the real
UTC time, so ``set`` and ``advance`` move it while it keeps ticking.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def _real_utc_now() -> datetime:
    return datetime.now(UTC)


class Clock:
    """A UTC clock that can be set, advanced and frozen (thread-safe)."""

    def __init__(
        self,
        start: datetime | None = None,
        *,
        frozen: bool = True,
        source: Callable[[], datetime] = _real_utc_now,
    ) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._frozen_at: datetime | None = None
        self._offset = timedelta(0)
        if start is not None:
            self._place(_as_utc(start), frozen=frozen)

    def now(self) -> datetime:
        """The sandbox's current time, timezone-aware UTC."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return self._source() + self._offset

    @property
    def frozen(self) -> bool:
        with self._lock:
            return self._frozen_at is not None

    def set(self, when: datetime, *, frozen: bool | None = None) -> datetime:
        """Move the clock to ``when``; ``frozen=None`` keeps the current mode."""
        with self._lock:
            keep = self._frozen_at is not None if frozen is None else frozen
            self._place(_as_utc(when), frozen=keep)
            return self._now_unlocked()

    def advance(self, seconds: float, *, frozen: bool | None = None) -> datetime:
        """Move the clock forward (or back, with a negative number) by ``seconds``."""
        with self._lock:
            keep = self._frozen_at is not None if frozen is None else frozen
            self._place(self._now_unlocked() + timedelta(seconds=seconds), frozen=keep)
            return self._now_unlocked()

    def snapshot(self) -> dict[str, object]:
        """What to persist: the frozen instant, or the offset from real UTC time."""
        with self._lock:
            if self._frozen_at is not None:
                return {"frozen_at": self._frozen_at.isoformat()}
            return {"offset_seconds": self._offset.total_seconds()}

    def restore(self, snapshot: dict[str, object]) -> None:
        """Put the clock back where :meth:`snapshot` found it."""
        with self._lock:
            frozen_at = snapshot.get("frozen_at")
            if isinstance(frozen_at, str):
                self._frozen_at = _as_utc(datetime.fromisoformat(frozen_at))
                self._offset = timedelta(0)
                return
            offset = snapshot.get("offset_seconds", 0)
            if not isinstance(offset, int | float):
                raise ValueError("offset_seconds must be a number")
            self._frozen_at = None
            self._offset = timedelta(seconds=offset)

    def _now_unlocked(self) -> datetime:
        if self._frozen_at is not None:
            return self._frozen_at
        return self._source() + self._offset

    def _place(self, when: datetime, *, frozen: bool) -> None:
        if frozen:
            self._frozen_at = when
            self._offset = timedelta(0)
        else:
            self._frozen_at = None
            self._offset = when - self._source()


def _as_utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("the sandbox clock needs a timezone-aware datetime")
    return when.astimezone(UTC)
