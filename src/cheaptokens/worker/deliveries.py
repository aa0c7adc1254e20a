"""Send buyer events to their webhooks, signed following the Standard Webhooks specification.

Events are recorded by the transactions that decide them (:mod:`cheaptokens.orders.events`);
this module only sends them, on threads of their own — never a web request's, a job's or the
upkeep's — so a receiver that is slow, down or answers 500 never slows the shop:

* at most ``Settings.webhook_deliveries`` sends at once, and one at a time per order;
* every send has a hard deadline (``Settings.webhook_timeout_seconds``) on the whole
  exchange — connecting, TLS, writing and reading — enforced on the socket, so a receiver that
  trickles its answer a byte at a time is cut off too;
* at most :data:`MAX_ANSWER` bytes of the answer are read (never decompressed), then the
  connection is closed;
* redirects are not followed (a 3xx is a failed attempt), no proxy from the environment is
  used, and the address is checked again at each send and connected to directly
  (:mod:`cheaptokens.orders.webhooks`: DNS rebinding);
* a failed attempt is retried with backoff (:data:`cheaptokens.orders.events.RETRY_DELAYS`);
  every attempt is in the delivery log.

The ``webhook-timestamp`` is wall-clock time (:func:`cheaptokens.times.utcnow`), not the
shop's clock (which is the sandbox's, and may be moved): receivers compare it with theirs.
Secrets are opened only to sign and never logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import httpcore
import httpx
from standardwebhooks.webhooks import Webhook

from cheaptokens import metrics
from cheaptokens.db import Database
from cheaptokens.errors import InvalidInput
from cheaptokens.orders import events, webhooks
from cheaptokens.secretbox import SecretBox
from cheaptokens.times import Clock, utcnow

log = logging.getLogger(__name__)

#: The most of a receiver's answer the shop reads (its status is all that counts).
MAX_ANSWER: Final = 4096
USER_AGENT: Final = "CheapTokens-Webhooks/1 (+Standard Webhooks)"


# ----------------------------------------------------------------------------- transport
class _DeadlineStream(httpcore.NetworkStream):
    """A connection that refuses to wait past its deadline, whatever each read returns."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def _left(self, timeout: float | None) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the delivery's time is up")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: object,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context,  # type: ignore[arg-type]
            server_hostname,
            self._left(timeout),
        )
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[object] | None = None,
    ) -> httpcore.NetworkStream:
        deadline = time.monotonic() + self._seconds
        left = self._seconds if timeout is None else min(timeout, self._seconds)
        stream = self._inner.connect_tcp(host, port, left, local_address, socket_options)  # type: ignore[arg-type]
        return _DeadlineStream(stream, deadline)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[object] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhooks are sent over TCP only")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport on a connection pool whose connections each have a hard deadline
    and are never kept alive (one exchange per connection)."""

    def __init__(self, seconds: float, max_connections: int) -> None:
        super().__init__(retries=0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=0,
            network_backend=_DeadlineBackend(seconds),
        )


def webhook_client(*, seconds: float, parallel: int) -> httpx.Client:
    """The HTTP client deliveries use: hard per-send deadline, no redirects, no proxies from
    the environment, no keep-alive."""
    step = min(seconds, 5.0)
    return httpx.Client(
        transport=_DeadlineTransport(seconds, max_connections=max(1, parallel)),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(step, connect=min(step, 3.0)),
    )


# ----------------------------------------------------------------------------- sending
@dataclass(frozen=True, slots=True)
class Result:
    status_code: int | None
    error: str | None
    duration_ms: int


def sign_headers(*, secret: str, event_id: str, body: str, at_seconds: int) -> dict[str, str]:
    """The Standard Webhooks headers of one send (the signature covers id, time and body)."""
    when = datetime.fromtimestamp(at_seconds, tz=UTC)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(at_seconds),
        "webhook-signature": Webhook(secret).sign(event_id, when, body),
    }


@dataclass
class Sender:
    """One HTTP POST of an event to its checked address."""

    policy: webhooks.UrlPolicy
    http: httpx.Client
    #: wall-clock time for the ``webhook-timestamp`` header
    wall: Clock = utcnow

    def send(self, out: events.Outgoing, secret: str) -> Result:
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            target = webhooks.check(out.url, self.policy)
        except InvalidInput as exc:
            return Result(None, f"refused: {exc.message}", took())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "host": target.host_header,
            **sign_headers(
                secret=secret,
                event_id=out.event_id,
                body=out.body,
                at_seconds=int(self.wall().timestamp()),
            ),
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            with self.http.stream(
                "POST",
                target.connect_url,
                content=out.body.encode(),
                headers=headers,
                extensions=extensions,
            ) as response:
                read = 0
                for chunk in response.iter_raw(1024):  # raw: a compressed answer stays small
                    read += len(chunk)
                    if read >= MAX_ANSWER:
                        break
                status = response.status_code
        except httpx.TimeoutException:
            return Result(None, "timed out", took())
        except httpx.HTTPError as exc:
            return Result(None, f"could not connect ({type(exc).__name__})", took())
        if 300 <= status < 400:
            return Result(status, "redirects are not followed", took())
        if not 200 <= status < 300:
            return Result(status, f"the receiver answered {status}", took())
        return Result(status, None, took())


@dataclass
class Deliveries:
    """Claims due events and sends them, at most ``parallel`` at once."""

    db: Database
    box: SecretBox
    clock: Clock
    sender: Sender
    parallel: int = 4
    #: how long a claimed event is this sender's (longer than any send's deadline)
    lease: timedelta = timedelta(seconds=120)
    _inflight: set[Future[Result]] = field(default_factory=set)

    def _claim(self, limit: int) -> list[events.Outgoing]:
        with self.db.begin() as session:
            return events.claim_due(session, now=self.clock(), limit=limit, lease=self.lease)

    def send_one(self, out: events.Outgoing) -> Result:
        """Send one claimed event and record the attempt (never raises)."""
        try:
            secret = self.box.open(out.sealed_secret, context=events.secret_context(out.order_id))
            result = self.sender.send(out, secret)
        except Exception as exc:  # a bug must not kill the sender; the attempt is logged
            log.exception("webhook %s: send failed unexpectedly", out.event_id)
            result = Result(None, f"internal error ({type(exc).__name__})", 0)
        outcome = (
            "delivered"
            if result.error is None
            else ("unreachable" if result.status_code is None else "rejected")
        )
        metrics.webhook_delivery(outcome, result.duration_ms / 1000)
        try:
            with self.db.begin() as session:
                events.record_attempt(
                    session,
                    event_id=out.event_id,
                    attempt=out.attempt,
                    status_code=result.status_code,
                    error=result.error,
                    duration_ms=result.duration_ms,
                    now=self.clock(),
                )
        except Exception:  # the lease lapses and the event is sent again
            log.exception("webhook %s: could not record the attempt", out.event_id)
        log.info(
            "webhook %s attempt %d: %s",
            out.event_id,
            out.attempt,
            result.status_code if result.error is None else result.error,
        )
        return result

    def send_due(self, *, limit: int | None = None) -> int:
        """Claim the due events and send them one after the other, here (tests, scripts);
        returns how many were tried."""
        batch = self._claim(limit or self.parallel)
        for out in batch:
            self.send_one(out)
        return len(batch)

    def run(self, stop: threading.Event, *, poll: float = 0.25) -> None:
        """Send due events on a pool of ``parallel`` threads until ``stop`` is set."""
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="webhooks") as pool:
            while not stop.is_set():
                self._inflight = {f for f in self._inflight if not f.done()}
                free = self.parallel - len(self._inflight)
                batch: list[events.Outgoing] = []
                if free > 0:
                    try:
                        batch = self._claim(free)
                    except Exception:  # the database may be busy; try again
                        log.exception("webhooks: could not claim events")
                for out in batch:
                    self._inflight.add(pool.submit(self.send_one, out))
                if not batch:
                    stop.wait(poll)


def record_expiring(*, db: Database, clock: Clock) -> int:
    """Record ``key.expiring`` events that are due (the upkeep timer calls it)."""
    with db.begin() as session:
        return events.expiring(session, now=clock())
