"""Per-minute request/token windows and the failed-request error budget.

Both are plain counters keyed by tuples and fed the sandbox clock; callers hold the
ledger lock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from . import errors
from .catalogue import Model

BUDGET_WINDOW = timedelta(seconds=30)
Bucket = tuple[str, str | None, str | None]  # key id x model x OpenAI ``user``


class ErrorBudget:
    """docs/venice-facts.md §4.4: more than ``threshold`` 4xx (not 429) in 30 s in a bucket → every
    request in that bucket gets 429 until the window has room again.

    ``kind`` is how the rate-limit log names a breach: ``FAILED_REQUESTS`` for the budget of
    failed requests, ``UNSUPPORTED_FEATURE_REQUESTS`` for the lenient one that counts the
    requests asking a model for a feature it lacks (§1.5)."""

    def __init__(self, threshold: int, kind: str = "FAILED_REQUESTS") -> None:
        self.threshold = threshold
        self.kind = kind
        self._failures: dict[Bucket, deque[datetime]] = {}

    def _window(self, bucket: Bucket, now: datetime) -> deque[datetime]:
        window = self._failures.setdefault(bucket, deque())
        while window and window[0] <= now - BUDGET_WINDOW:
            window.popleft()
        return window

    def check(self, bucket: Bucket, now: datetime) -> None:
        window = self._window(bucket, now)
        if len(window) > self.threshold:
            resets = window[0] + BUDGET_WINDOW
            error = errors.standard(
                429,
                errors.failed_budget_message(self.threshold),
                {
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-resets": str(int(resets.timestamp() * 1000)),
                    "retry-after": str(max(1, int((resets - now).total_seconds() + 0.999))),
                },
            )
            error.rate_limit = (self.kind, "")  # the model is named by the caller
            raise error

    def record(self, bucket: Bucket, now: datetime) -> None:
        self._window(bucket, now).append(now)


@dataclass(slots=True)
class _Minute:
    start: datetime
    requests: int = 0
    tokens: int = 0


class ModelRateLimits:
    """Requests and tokens per minute per account and model (docs/venice-facts.md §5.1-5.2), in
    fixed one-minute windows."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], _Minute] = {}

    def _minute(self, account_id: str, model: Model, now: datetime) -> _Minute:
        start = now.replace(second=0, microsecond=0)
        window = self._windows.get((account_id, model.id))
        if window is None or window.start != start:
            window = self._windows[(account_id, model.id)] = _Minute(start)
        return window

    def admit(self, account_id: str, model: Model, now: datetime) -> dict[str, str]:
        """Count one request or raise 429; returns the ``x-ratelimit-*`` headers."""
        window = self._minute(account_id, model, now)
        tier = model.tier
        if window.requests >= tier.rpm or window.tokens >= tier.tpm:
            error = errors.standard(
                429,
                errors.RATE_LIMITED,
                {
                    **self.headers(account_id, model, now),
                    "retry-after": str(max(1, 60 - now.second)),
                },
            )
            error.rate_limit = ("RPM" if window.requests >= tier.rpm else "TPM", model.id)
            raise error
        window.requests += 1
        return self.headers(account_id, model, now)

    def add_tokens(self, account_id: str, model: Model, tokens: int, now: datetime) -> None:
        self._minute(account_id, model, now).tokens += tokens

    def headers(self, account_id: str, model: Model, now: datetime) -> dict[str, str]:
        window = self._minute(account_id, model, now)
        tier = model.tier
        reset = window.start + timedelta(minutes=1)
        return {
            "x-ratelimit-limit-requests": str(tier.rpm),
            "x-ratelimit-remaining-requests": str(max(0, tier.rpm - window.requests)),
            # Unix milliseconds (SK-ERR, docs/venice-facts.md §5.1)
            "x-ratelimit-reset-requests": str(int(reset.timestamp() * 1000)),
            "x-ratelimit-limit-tokens": str(tier.tpm),
            "x-ratelimit-remaining-tokens": str(max(0, tier.tpm - window.tokens)),
            # seconds until reset (INTRO, docs/venice-facts.md §5.1)
            "x-ratelimit-reset-tokens": str(max(1, int((reset - now).total_seconds()))),
            "x-ratelimit-type": "user",
        }


#: ``GET /api_keys/rate_limits/log`` returns the last 50 breaches (SPEC; docs/venice-facts.md §1.5).
LOG_SIZE = 50


@dataclass(frozen=True, slots=True)
class Breach:
    """One request refused with 429 because it breached a limit."""

    api_key_id: str
    model_id: str
    kind: str  # RPM | TPM | RPD | FAILED_REQUESTS | UNSUPPORTED_FEATURE_REQUESTS
    at: datetime


class RateLimitLog:
    """The last :data:`LOG_SIZE` breaches per account (in memory, like the windows)."""

    def __init__(self) -> None:
        self._entries: dict[str, deque[Breach]] = {}

    def record(self, account_id: str, breach: Breach) -> None:
        self._entries.setdefault(account_id, deque(maxlen=LOG_SIZE)).append(breach)

    def newest_first(self, account_id: str) -> list[Breach]:
        return list(reversed(self._entries.get(account_id, ())))
