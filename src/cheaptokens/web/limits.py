"""Rate limits: quotes and orders per client, operator logins per client and per user name.

The counts are kept by the ``limits`` library with its moving-window strategy, in this
process's memory on the offline default, or in Redis when ``CHEAPTOKENS_REDIS_URL`` is set,
so that every web process behind a proxy counts against the same limits (keys start with
``CHEAPTOKENS_REDIS_KEY_PREFIX``).

If Redis cannot be reached, quotes and orders are let through (the shop stays up; the cap on
one client's unpaid holds still applies) and the failure is logged, while operator logins
are refused with 503: a brute-force brake that fails open is no brake.

Operator logins count every attempt per client address and per user name (hashed: a password
typed into the user-name field must not be stored). Each tier of
``CHEAPTOKENS_ADMIN_LOGIN_CLIENT_LIMITS`` / ``_USER_LIMITS`` (``5/minute;20/hour;100/day``)
that is used up refuses further attempts — the right password too — with 429 and a
``Retry-After`` until the window has room again, so the wait grows from a minute to an hour
to a day. A successful login clears the counts of its client and user name.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time

from limits import RateLimitItem, RateLimitItemPerMinute, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from cheaptokens.config import Settings
from cheaptokens.errors import RateLimited, ServiceUnavailable

log = logging.getLogger(__name__)

#: How long Redis may take to answer before the limits count it as down.
REDIS_TIMEOUT_SECONDS = 0.5
#: One alert per locked-out client or user name in this window (not one per attempt).
ALERT_EVERY = RateLimitItemPerMinute(1, 15)


class LoginLocked(RateLimited):
    """Too many operator login attempts from this client or for this user name."""

    code = "login_locked"

    def __init__(self, message: str, *, retry_after: int, scope: str, who: str) -> None:
        super().__init__(message, retry_after=retry_after)
        self.scope = scope  # "client" or "user"
        self.who = who  # the client's hash, or the user name's hash


def user_key(username: str) -> str:
    """The per-user counter's name: a hash, never the typed text."""
    return hashlib.sha256(b"admin-user\x00" + username.encode()).hexdigest()[:16]


class ShopLimits:
    """Every rate limit of the web app, over one ``limits`` storage."""

    def __init__(
        self,
        storage: Storage,
        *,
        login_client: list[RateLimitItem],
        login_user: list[RateLimitItem],
    ) -> None:
        self.storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._login = {"client": login_client, "user": login_user}
        self._warned_at = 0.0
        self._warn_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ShopLimits:
        url = settings.redis_url.get_secret_value()
        storage: Storage
        if url:
            storage = RedisStorage(
                url,
                key_prefix=settings.redis_key_prefix,
                wrap_exceptions=True,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
        else:
            storage = MemoryStorage()
        return cls(
            storage,
            login_client=parse_many(settings.admin_login_client_limits),
            login_user=parse_many(settings.admin_login_user_limits),
        )

    @property
    def shared(self) -> bool:
        """Do the counts live outside this process (Redis)?"""
        return isinstance(self.storage, RedisStorage)

    # ------------------------------------------------------------------ quotes, orders
    def check(self, bucket: str, client: str, per_minute: int) -> None:
        """Count one ``bucket`` request of ``client``; raise RateLimited past ``per_minute``."""
        item = RateLimitItemPerMinute(per_minute)
        try:
            if self._limiter.hit(item, bucket, client):
                return
            retry = self._retry_after(item, bucket, client)
        except StorageError:
            self._storage_down(bucket)
            return  # fail open: the shop stays up without its abuse brake
        raise RateLimited(
            f"too many {bucket} requests from this client; wait {retry} s and try again",
            retry_after=retry,
        )

    # -------------------------------------------------------------------- operator login
    def login_attempt(self, *, client: str, user: str) -> None:
        """Count one login attempt; raise LoginLocked if the client or the user name has used
        up a tier of its limits (ServiceUnavailable if the counts cannot be reached)."""
        try:
            for scope, who in (("client", client), ("user", user)):
                for item in self._login[scope]:
                    if not self._limiter.hit(item, "login", scope, who):
                        retry = self._retry_after(item, "login", scope, who)
                        raise LoginLocked(
                            f"too many failed logins; wait {_duration(retry)} before you try again",
                            retry_after=retry,
                            scope=scope,
                            who=who,
                        )
        except StorageError:
            self._storage_down("login")
            raise ServiceUnavailable(
                "logins are paused: the shop cannot reach its rate-limit store; try again soon"
            ) from None

    def login_succeeded(self, *, client: str, user: str) -> None:
        """Forget the attempts of this client and user name (the operator got in)."""
        try:
            for scope, who in (("client", client), ("user", user)):
                for item in self._login[scope]:
                    self._limiter.clear(item, "login", scope, who)
        except StorageError:
            self._storage_down("login")

    def first_lockout(self, locked: LoginLocked) -> bool:
        """True once per :data:`ALERT_EVERY` for a locked-out client or user name: when the
        operator should be alerted (not at every refused attempt)."""
        try:
            return self._limiter.hit(ALERT_EVERY, "login-alert", locked.scope, locked.who)
        except StorageError:
            return True

    # ---------------------------------------------------------------------------- helpers
    def _retry_after(self, item: RateLimitItem, *ids: str) -> int:
        reset = self._limiter.get_window_stats(item, *ids).reset_time
        return max(1, math.ceil(reset - time.time()))

    def _storage_down(self, bucket: str) -> None:
        now = time.monotonic()
        with self._warn_lock:
            if now - self._warned_at < 60 and self._warned_at:
                return
            self._warned_at = now
        # Never the URL: it may hold Redis's password.
        log.error("rate-limit store unreachable (%s limits)", bucket)


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{math.ceil(seconds / 60)} minutes"
    return f"{math.ceil(seconds / 3600)} hours"
