"""The worker loop: claim a due job, run it, record the outcome; run upkeep on timers."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from cheaptokens import jobs
from cheaptokens.db import Database
from cheaptokens.orders import flows, ops, standing, topups, transitions
from cheaptokens.orders import x402 as x402flow
from cheaptokens.orders.keymaking import Captured
from cheaptokens.orders.retention import Retention
from cheaptokens.orders.rules import ShopRules
from cheaptokens.orders.webhooks import UrlPolicy
from cheaptokens.payments import PaymentProvider
from cheaptokens.payments.x402 import X402Gateway
from cheaptokens.payments.x402_refunds import X402Refunder
from cheaptokens.pricing.forecast import Forecast
from cheaptokens.secretbox import SecretBox
from cheaptokens.shop import Shop
from cheaptokens.times import Clock
from cheaptokens.venice.catalogue import ModelCatalogue
from cheaptokens.venice.types import VeniceGateway
from cheaptokens.worker import maintenance, pool, repricing
from cheaptokens.worker.deliveries import Deliveries, Sender, record_expiring, webhook_client
from cheaptokens.worker.provision import provision
from cheaptokens.worker.refund import refund, refund_stray
from cheaptokens.worker.replace import replace_key
from cheaptokens.worker.topup import apply_topup, refund_topup
from cheaptokens.worker.watch import WatchReport, watch

log = logging.getLogger(__name__)


def _default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _default_every() -> dict[str, float]:
    return {
        "heartbeat": 5.0,
        "sweep": 1.0,
        "accounts": 300.0,
        "watch": 10.0,
        "expire": 30.0,
        "pool": 1.0,
        "reconcile": 600.0,
        "reprice": 15.0,
        "prune": 3600.0,
        # key.expiring events; the watch again, sooner, for accounts with a key near a threshold
        "expiring": 15.0,
        "watch_near": 2.0,
        # standing orders: fire those whose price has come (and expire those whose T passed)
        "standing": 1.0,
    }


@dataclass
class Worker:
    """One worker: the collaborators its jobs and upkeep use, and its timers."""

    db: Database
    rules: ShopRules
    gateways: Mapping[str, VeniceGateway]
    payments: PaymentProvider
    box: SecretBox
    clock: Clock
    forecast: Forecast
    #: Venice's models and prices (sizes the overshoot reserve); None: the fallback reserve
    catalogue: ModelCatalogue | None = None
    #: re-plan the curve every hour (False keeps the default curve)
    repricing: bool = True
    #: learn the forecast each night from the shop's history (False: the configured one)
    forecast_learning: bool = True
    #: x402 payments: settles an x402 order's authorization when the worker makes its key
    #: (a request that died, a standing order); None: such orders wait
    x402: X402Gateway | None = None
    #: pays x402 refunds from the refund wallet; None: they are the operator's to pay by hand
    x402_refunds: X402Refunder | None = None
    #: the key of order tokens (a standing order that fires places an order)
    token_key: bytes = b""
    #: sends buyers' webhook events on threads of its own (None: events wait in the table)
    deliveries: Deliveries | None = None
    name: str = field(default_factory=_default_name)
    #: what to forget, and when (None: nothing is pruned)
    retention: Retention | None = None
    #: accounts worked on at once by upkeep
    parallel: int = 1
    #: seconds between runs of each upkeep task
    every: dict[str, float] = field(default_factory=_default_every)
    _last: dict[str, float] = field(default_factory=dict)
    _pruned_day: date | None = None
    #: accounts the last look found near a usage threshold (see :meth:`watch_near`)
    _near: set[str] = field(default_factory=set)
    _started: datetime | None = None

    @classmethod
    def for_shop(cls, shop: Shop, **kwargs: object) -> Worker:
        watch_every = shop.settings.watch_seconds
        kwargs.setdefault(
            "every",
            {**_default_every(), "watch": watch_every, "watch_near": max(1.0, watch_every / 5)},
        )
        if "deliveries" not in kwargs:
            kwargs["deliveries"] = deliveries_for(shop)
        return cls(
            db=shop.db,
            rules=shop.rules,
            gateways=shop.gateways,
            payments=shop.payments,
            box=shop.box,
            clock=shop.clock,
            forecast=repricing.forecast_of(shop.settings),
            catalogue=shop.catalogue,
            retention=flows.retention_of(shop.settings),
            parallel=shop.settings.venice_parallel_accounts,
            repricing=shop.settings.repricing,
            forecast_learning=shop.settings.forecast_learning,
            x402=shop.x402,
            x402_refunds=shop.x402_refunds,
            token_key=shop.token_key,
            **kwargs,  # type: ignore[arg-type]
        )

    # ------------------------------------------------------------------------- jobs
    def _handle(self, kind: str, order_id: str, lease: jobs.Lease) -> None:
        if kind == jobs.PROVISION:
            provision(
                db=self.db,
                gateways=self.gateways,
                box=self.box,
                rules=self.rules,
                clock=self.clock,
                order_id=order_id,
                lease=lease,
                capture=self._capture,
            )
        elif kind == jobs.REFUND:
            refund(
                db=self.db,
                gateways=self.gateways,
                payments=self.payments,
                clock=self.clock,
                order_id=order_id,
                x402_refunds=self.x402_refunds,
            )
        elif kind == jobs.REPLACE_KEY:
            replace_key(
                db=self.db,
                gateways=self.gateways,
                box=self.box,
                rules=self.rules,
                clock=self.clock,
                order_id=order_id,
                lease=lease,
            )
        elif kind == jobs.APPLY_TOPUP:
            apply_topup(
                db=self.db,
                gateways=self.gateways,
                rules=self.rules,
                clock=self.clock,
                topup_id=order_id,
                capture=self._capture,
            )
        elif kind == jobs.REFUND_TOPUP:
            refund_topup(
                db=self.db,
                gateways=self.gateways,
                payments=self.payments,
                clock=self.clock,
                topup_id=order_id,
                x402_refunds=self.x402_refunds,
            )
        elif kind == jobs.REFUND_STRAY:
            refund_stray(db=self.db, payments=self.payments, clock=self.clock, order_id=order_id)
        else:
            raise ValueError(f"unknown job kind {kind!r}")

    def _capture(self, order_id: str) -> Captured:
        """Settle the x402 payment of an order or a top-up (by its id)."""
        if self.x402 is None:
            return Captured.UNKNOWN
        return x402flow.capture_payment(
            db=self.db, x402=self.x402, clock=self.clock, order_id=order_id
        )

    def run_one(self) -> bool:
        """Claim and run one due job; False when there was none."""
        now = self.clock()
        with self.db.begin() as session:
            job = jobs.claim(session, worker=self.name, now=now, lease=self.rules.job_lease)
            if job is None:
                return False
            job_id, kind, order_id, attempts = job.id, job.kind, job.order_id, job.attempts
        lease = jobs.Lease(job_id=job_id, worker=self.name)
        try:
            self._handle(kind, order_id or "", lease)
        except jobs.Retry as exc:
            delay = min(exc.delay * (1.5 ** min(attempts - 1, 8)), 60.0)
            log.info("job %s %s for %s: retry in %.1fs (%s)", job_id, kind, order_id, delay, exc)
            with self.db.begin() as session:
                jobs.retry_later(
                    session,
                    job_id=job_id,
                    worker=self.name,
                    now=self.clock(),
                    delay=delay,
                    error=str(exc),
                )
            return True
        with self.db.begin() as session:
            jobs.finish(session, job_id=job_id, worker=self.name)
        return True

    def drain(self, *, limit: int = 1000) -> int:
        """Run due jobs until none is left (tests and scripts); returns how many ran."""
        ran = 0
        while ran < limit and self.run_one():
            ran += 1
        return ran

    # ------------------------------------------------------------------------- upkeep
    def upkeep(self, *, force: bool = False) -> None:
        """Run each periodic task whose interval has passed."""
        tasks: dict[str, Callable[[], object]] = {
            "heartbeat": self.beat,
            "sweep": self.sweep,
            "accounts": lambda: maintenance.refresh_accounts(
                db=self.db, gateways=self.gateways, clock=self.clock, parallel=self.parallel
            ),
            "watch": self.watch_now,
            "expire": self.expire,
            "pool": lambda: pool.refill(
                db=self.db,
                gateways=self.gateways,
                box=self.box,
                rules=self.rules,
                clock=self.clock,
                parallel=self.parallel,
            ),
            "reconcile": lambda: maintenance.reconcile(
                db=self.db, gateways=self.gateways, clock=self.clock, parallel=self.parallel
            ),
            "reprice": self.reprice,
            "prune": self.prune,
            "expiring": lambda: record_expiring(db=self.db, clock=self.clock),
            "watch_near": self.watch_near,
            "standing": self.standing_orders,
        }
        mono = time.monotonic()
        every = {**_default_every(), **self.every}
        for name, task in tasks.items():
            if force or mono - self._last.get(name, -1e9) >= every[name]:
                self._last[name] = mono
                try:
                    task()
                except Exception:  # upkeep must never stop the job loop; it runs again
                    log.exception("upkeep task %s failed", name)

    def beat(self) -> None:
        """Tell ``/readyz`` and ``/metrics`` that this worker's upkeep loop is alive."""
        now = self.clock()
        if self._started is None:
            self._started = now
        with self.db.begin() as session:
            ops.beat(session, worker=self.name, started_at=self._started, now=now)

    def watch_now(self) -> WatchReport:
        """One look at every account now (the upkeep timer does it every few seconds)."""
        report = watch(
            db=self.db,
            gateways=self.gateways,
            rules=self.rules,
            clock=self.clock,
            catalogue=self.catalogue,
            parallel=self.parallel,
        )
        self._near = set(report.near)
        return report

    def watch_near(self) -> WatchReport | None:
        """Look again, sooner, at the accounts where the last look found a key (whose buyer
        has a webhook) a few percent below a usage threshold; nothing when there is none."""
        if not self._near:
            return None
        report = watch(
            db=self.db,
            gateways=self.gateways,
            rules=self.rules,
            clock=self.clock,
            catalogue=self.catalogue,
            parallel=self.parallel,
            only=set(self._near),
        )
        self._near = (self._near - set(self._near)) | set(report.near)
        return report

    def standing_orders(self) -> int:
        """Expire the standing orders whose T passed and fire those whose price has come
        (every second, and right after the curve is re-planned); returns how many fired."""
        standing.expire_due(db=self.db, now=self.clock())
        if self.x402 is None or not self.token_key:  # no x402, or a worker without the shop's
            return 0
        return standing.fire_due(
            db=self.db,
            rules=self.rules,
            x402=self.x402,
            box=self.box,
            token_key=self.token_key,
            clock=self.clock,
        )

    def prune(self) -> None:
        """Once a night (the first hourly look after 00:00 UTC), forget what retention says."""
        now = self.clock()
        if self._pruned_day == now.date() or self.retention is None:
            return
        flows.prune(db=self.db, policy=self.retention, now=now)
        self._pruned_day = now.date()

    def sweep(self) -> int:
        """Release lapsed quotes and unpaid checkouts."""
        with self.db.begin() as session:
            now = self.clock()
            return transitions.sweep_expired(session, now=now) + topups.sweep_expired(
                session, now=now
            )

    def expire(self) -> None:
        """Delete keys (sold and pooled) whose 00:00 UTC has passed."""
        maintenance.expire_keys(db=self.db, gateways=self.gateways, clock=self.clock)
        pool.expire(db=self.db, gateways=self.gateways, clock=self.clock)

    def reprice(self) -> None:
        if not self.repricing:
            return
        now = self.clock()
        if self.forecast_learning:  # the nightly refit (a no-op once today's is stored)
            repricing.nightly_refit(db=self.db, forecast=self.forecast, now=now)
        forecast = repricing.forecast_in_force(
            self.db, configured=self.forecast, learning=self.forecast_learning
        ).forecast
        repricing.replan(db=self.db, rules=self.rules, forecast=forecast, now=now)
        repricing.replan_on_drift(db=self.db, rules=self.rules, forecast=forecast, now=now)
        # Publish the next hour's curve a little ahead, so no moment falls back to the
        # day's default curve while the workers get round to it.
        upcoming = repricing.hour_start(now) + timedelta(hours=1)
        if upcoming - now <= repricing.PUBLISH_AHEAD:
            repricing.replan(db=self.db, rules=self.rules, forecast=forecast, now=upcoming)
        self.standing_orders()  # a new curve may bring some standing orders' price

    # ------------------------------------------------------------------------- threads
    def run_jobs(self, stop: threading.Event, *, poll: float = 0.2) -> None:
        """Claim and run jobs until ``stop`` is set."""
        while not stop.is_set():
            try:
                busy = self.run_one()
            except Exception:  # a crashed job is retried when its lease lapses
                log.exception("job crashed; its lease will lapse and it will run again")
                busy = False
            if not busy:
                stop.wait(poll)

    def run_upkeep(self, stop: threading.Event, *, poll: float = 0.2) -> None:
        while not stop.is_set():
            self.upkeep()
            stop.wait(poll)

    def run_forever(self, stop: threading.Event, *, poll: float = 0.2, threads: int = 1) -> None:
        """Upkeep on one thread, jobs on ``threads`` others and webhook deliveries on their
        own pool, until ``stop`` is set.

        Each job thread is a worker of its own name, so lease fencing tells them apart.
        """
        log.info("worker %s started with %d job threads", self.name, threads)
        runners = [
            threading.Thread(
                target=self.run_upkeep,
                args=(stop,),
                kwargs={"poll": poll},
                name=f"{self.name}-upkeep",
                daemon=True,
            )
        ]
        if self.deliveries is not None:
            runners.append(
                threading.Thread(
                    target=self.deliveries.run,
                    args=(stop,),
                    name=f"{self.name}-webhooks",
                    daemon=True,
                )
            )
        for i in range(max(1, threads)):
            w = replace(self, name=f"{self.name}-j{i}", _last={})
            runners.append(
                threading.Thread(
                    target=w.run_jobs, args=(stop,), kwargs={"poll": poll}, name=w.name, daemon=True
                )
            )
        for t in runners:
            t.start()
        stop.wait()
        for t in runners:
            t.join(timeout=30)


def deliveries_for(shop: Shop) -> Deliveries:
    """The webhook sender of ``shop``'s settings (its HTTP client closes with the shop)."""
    settings = shop.settings
    http = webhook_client(
        seconds=settings.webhook_timeout_seconds, parallel=settings.webhook_deliveries
    )
    shop.closers.append(http.close)
    return Deliveries(
        db=shop.db,
        box=shop.box,
        clock=shop.clock,
        sender=Sender(policy=UrlPolicy.for_settings(settings), http=http),
        parallel=settings.webhook_deliveries,
    )
