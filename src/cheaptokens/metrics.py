"""What each process counts for ``/metrics``: Venice and payment calls (latency, errors) and
buyer-webhook deliveries.

Business figures (sales, revenue, stock, jobs, the price in force) are not counted here: they
are read from the database when ``/metrics`` is scraped (``web/metrics.py``), so every web
process answers the same, exact values, whatever process made the sale. What only a process can
see — how long its Venice and payment calls took, which failed — is counted here, in
``prometheus_client`` instruments:

- one process (``cheaptokens serve`` with its worker thread): in its memory;
- several processes on one host (``serve --no-worker`` ×N and ``worker``): set
  ``PROMETHEUS_MULTIPROC_DIR`` to one directory, the same for all of them and emptied before
  they start; each process then writes its counts to files there (``prometheus_client``'s
  multiprocess mode) and any web process's ``/metrics`` adds them all up.

The instruments are registered in no global registry: :func:`process_registry` builds one per
scrape. Labels are bounded sets (routes, providers, outcomes): never an id, a key or an amount.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, Final, ParamSpec, TypeVar

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client chooses its mode when it is first imported, from this variable: the
# directory must exist by then, and an empty value means "not set" (not the current directory).
if os.environ.get(MULTIPROC_ENV):
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)
else:
    os.environ.pop(MULTIPROC_ENV, None)

from prometheus_client import CollectorRegistry, Counter, Histogram  # noqa: E402
from prometheus_client import multiprocess as _multiprocess  # noqa: E402

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: Seconds: a Venice or payment call takes ~50 ms to a few seconds (timeouts at 10–20 s).
LATENCY_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

VENICE_REQUESTS = Counter(
    "cheaptokens_venice_requests",
    "HTTP requests to Venice's key and billing routes (each attempt), by route and outcome "
    "(the HTTP status, or the transport error's class)",
    ["method", "route", "outcome"],
    registry=None,
)
VENICE_SECONDS = Histogram(
    "cheaptokens_venice_request_seconds",
    "Time of one request to Venice (each attempt), by route",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
PAYMENT_CALLS = Counter(
    "cheaptokens_payment_calls",
    "Calls to the payment provider, by action and outcome ('ok' or the error's class)",
    ["provider", "action", "outcome"],
    registry=None,
)
PAYMENT_SECONDS = Histogram(
    "cheaptokens_payment_call_seconds",
    "Time of one call to the payment provider, by action",
    ["provider", "action"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
WEBHOOK_DELIVERIES = Counter(
    "cheaptokens_webhook_deliveries",
    "Attempts to deliver a buyer webhook, by outcome ('delivered', 'rejected', 'unreachable')",
    ["outcome"],
    registry=None,
)
WEBHOOK_SECONDS = Histogram(
    "cheaptokens_webhook_delivery_seconds",
    "Time of one attempt to deliver a buyer webhook",
    buckets=LATENCY_BUCKETS,
    registry=None,
)

INSTRUMENTS: Final = (
    VENICE_REQUESTS,
    VENICE_SECONDS,
    PAYMENT_CALLS,
    PAYMENT_SECONDS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_SECONDS,
)


def multiprocess_dir() -> str | None:
    """The shared directory of the multiprocess mode, or None (counts in this process only)."""
    return os.environ.get(MULTIPROC_ENV) or None


def process_registry() -> CollectorRegistry:
    """A registry holding this host's process counts: every process's (multiprocess mode) or
    this one's."""
    registry = CollectorRegistry(auto_describe=True)
    if multiprocess_dir():
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for instrument in INSTRUMENTS:
            registry.register(instrument)
    return registry


# ----------------------------------------------------------------------------- the hooks
def venice_request(method: str, route: str, outcome: str, seconds: float) -> None:
    """One attempt of a Venice request: ``outcome`` is the status (``"200"``) or an error's
    class name (``"ConnectTimeout"``); ``route`` is a template (``/api_keys/{id}``)."""
    VENICE_REQUESTS.labels(method, route, outcome).inc()
    VENICE_SECONDS.labels(method, route).observe(seconds)


@contextmanager
def payment_call(provider: str, action: str) -> Iterator[None]:
    """Time and count one call to a payment provider; an exception is counted by its class
    and re-raised."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except Exception as exc:
        outcome = type(exc).__name__
        raise
    finally:
        PAYMENT_CALLS.labels(provider, action, outcome).inc()
        PAYMENT_SECONDS.labels(provider, action).observe(time.perf_counter() - started)


def payment_action(action: str) -> Callable[[Callable[_P, _T]], Callable[_P, _T]]:
    """Decorate a provider method (of an object with a ``name``) with :func:`payment_call`."""

    def decorate(method: Callable[_P, _T]) -> Callable[_P, _T]:
        @wraps(method)
        def timed(*args: _P.args, **kwargs: _P.kwargs) -> _T:
            provider: Any = args[0]
            with payment_call(str(getattr(provider, "name", "unknown")), action):
                return method(*args, **kwargs)

        return timed

    return decorate


def webhook_delivery(outcome: str, seconds: float) -> None:
    """One attempt to send a buyer webhook; the sender calls it after each try:
    ``"delivered"`` (2xx), ``"rejected"`` (another status) or ``"unreachable"`` (no answer)."""
    WEBHOOK_DELIVERIES.labels(outcome).inc()
    WEBHOOK_SECONDS.observe(seconds)
