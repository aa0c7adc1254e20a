"""The worker loop: claim a due job, run it, record the outcome; run upkeep on timers."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from cheaptokens.orders import service
from cheaptokens.pricing.curve import next_midnight
from cheaptokens.shop import Shop
from cheaptokens.worker import jobs, maintenance, pool, repricing
from cheaptokens.worker.provision import Lease, Retry, provision
from cheaptokens.worker.refund import refund, refund_stray

log = logging.getLogger(__name__)

LAST_CALL = timedelta(minutes=10)

HANDLERS: dict[str, Callable[..., None]] = {
    jobs.PROVISION: provision,
    jobs.REFUND: refund,
    jobs.REFUND_STRAY: refund_stray,
}


@dataclass
class Worker:
    shop: Shop
    name: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )
    #: seconds between runs of each upkeep task
    every: dict[str, float] = field(
        default_factory=lambda: {
            "sweep": 1.0,
            "accounts": 300.0,
            "usage": 300.0,
            "expire": 30.0,
            "pool": 1.0,
            "reconcile": 600.0,
            "reprice": 15.0,
        }
    )
    _last: dict[str, float] = field(default_factory=dict)

    def run_one(self) -> bool:
        """Claim and run one due job; False when there was none."""
        now = self.shop.clock()
        with self.shop.sessions.begin() as session:
            job = jobs.claim(session, worker=self.name, now=now, lease=self.shop.rules.job_lease)
            if job is None:
                return False
            job_id, kind, order_id, attempts = job.id, job.kind, job.order_id, job.attempts
        lease = Lease(job_id=job_id, worker=self.name)
        try:
            handler = HANDLERS[kind]
            if kind == jobs.PROVISION:
                handler(self.shop, order_id=order_id, lease=lease)
            else:
                handler(self.shop, order_id=order_id)
        except Retry as exc:
            delay = min(exc.delay * (1.5 ** min(attempts - 1, 8)), 60.0)
            log.info("job %s %s for %s: retry in %.1fs (%s)", job_id, kind, order_id, delay, exc)
            with self.shop.sessions.begin() as session:
                jobs.retry_later(
                    session,
                    job_id=job_id,
                    worker=self.name,
                    now=self.shop.clock(),
                    delay=delay,
                    error=str(exc),
                )
            return True
        with self.shop.sessions.begin() as session:
            jobs.finish(session, job_id=job_id, worker=self.name)
        return True

    def upkeep(self, *, force: bool = False) -> None:
        """Run each periodic task whose interval has passed."""
        tasks: dict[str, Callable[[], object]] = {
            "sweep": self._sweep,
            "accounts": lambda: maintenance.refresh_accounts(self.shop),
            "usage": lambda: maintenance.record_usage(self.shop),
            "expire": lambda: (maintenance.expire_keys(self.shop), pool.expire(self.shop)),
            "pool": lambda: pool.refill(self.shop),
            "reconcile": lambda: maintenance.reconcile(self.shop),
            "reprice": self._reprice,
        }
        mono = time.monotonic()
        every = dict(self.every)
        if next_midnight(self.shop.clock()) - self.shop.clock() < LAST_CALL:
            # Keys stop answering at 00:00: read their usage often in the last minutes.
            every["usage"] = min(every["usage"], 60.0)
        for name, task in tasks.items():
            if force or mono - self._last.get(name, -1e9) >= every[name]:
                self._last[name] = mono
                try:
                    task()
                except Exception:  # upkeep must never stop the job loop; it runs again
                    log.exception("upkeep task %s failed", name)

    def _reprice(self) -> None:
        if not self.shop.settings.repricing:
            return
        now = self.shop.clock()
        repricing.replan(self.shop, now=now)
        # Publish the next hour's curve a little ahead, so no moment falls back to the
        # day's default curve while the workers get round to it.
        upcoming = repricing.hour_start(now) + timedelta(hours=1)
        if upcoming - now <= repricing.PUBLISH_AHEAD:
            repricing.replan(self.shop, now=upcoming)

    def _sweep(self) -> None:
        with self.shop.sessions.begin() as session:
            service.sweep_expired(session, now=self.shop.clock())

    def drain(self, *, limit: int = 1000) -> int:
        """Run due jobs until none is left (tests and scripts); returns how many ran."""
        ran = 0
        while ran < limit and self.run_one():
            ran += 1
        return ran

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
            w = Worker(self.shop, name=f"{self.name}-j{i}")
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
