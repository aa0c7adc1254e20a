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
from datetime import datetime, timedelta

from cheaptokens import jobs
from cheaptokens.db import Database
from cheaptokens.orders import ops, topups, transitions
from cheaptokens.orders.rules import ShopRules
from cheaptokens.payments import PaymentProvider
from cheaptokens.pricing.forecast import Forecast
from cheaptokens.secretbox import SecretBox
from cheaptokens.shop import Shop
from cheaptokens.times import Clock
from cheaptokens.venice.catalogue import ModelCatalogue
from cheaptokens.venice.types import VeniceGateway
from cheaptokens.worker import maintenance, pool, repricing
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
    name: str = field(default_factory=_default_name)
    #: seconds between runs of each upkeep task
    every: dict[str, float] = field(default_factory=_default_every)
    _last: dict[str, float] = field(default_factory=dict)
    _started: datetime | None = None

    @classmethod
    def for_shop(cls, shop: Shop, **kwargs: object) -> Worker:
        kwargs.setdefault("every", {**_default_every(), "watch": shop.settings.watch_seconds})
        return cls(
            db=shop.db,
            rules=shop.rules,
            gateways=shop.gateways,
            payments=shop.payments,
            box=shop.box,
            clock=shop.clock,
            forecast=repricing.forecast_of(shop.settings),
            catalogue=shop.catalogue,
            repricing=shop.settings.repricing,
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
            )
        elif kind == jobs.REFUND:
            refund(
                db=self.db,
                gateways=self.gateways,
                payments=self.payments,
                clock=self.clock,
                order_id=order_id,
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
            )
        elif kind == jobs.REFUND_TOPUP:
            refund_topup(
                db=self.db,
                gateways=self.gateways,
                payments=self.payments,
                clock=self.clock,
                topup_id=order_id,
            )
        elif kind == jobs.REFUND_STRAY:
            refund_stray(db=self.db, payments=self.payments, clock=self.clock, order_id=order_id)
        else:
            raise ValueError(f"unknown job kind {kind!r}")

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
                db=self.db, gateways=self.gateways, clock=self.clock
            ),
            "watch": self.watch_now,
            "expire": self.expire,
            "pool": lambda: pool.refill(
                db=self.db,
                gateways=self.gateways,
                box=self.box,
                rules=self.rules,
                clock=self.clock,
            ),
            "reconcile": lambda: maintenance.reconcile(
                db=self.db, gateways=self.gateways, clock=self.clock
            ),
            "reprice": self.reprice,
        }
        mono = time.monotonic()
        every = dict(self.every)
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
        return watch(
            db=self.db,
            gateways=self.gateways,
            rules=self.rules,
            clock=self.clock,
            catalogue=self.catalogue,
        )

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
        repricing.replan(db=self.db, rules=self.rules, forecast=self.forecast, now=now)
        # Publish the next hour's curve a little ahead, so no moment falls back to the
        # day's default curve while the workers get round to it.
        upcoming = repricing.hour_start(now) + timedelta(hours=1)
        if upcoming - now <= repricing.PUBLISH_AHEAD:
            repricing.replan(db=self.db, rules=self.rules, forecast=self.forecast, now=upcoming)

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
        """Upkeep on one thread and jobs on ``threads`` others, until ``stop`` is set.

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
