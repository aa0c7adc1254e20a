"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can serve: database, schema,
Venice, a live worker). Neither shows a secret, a URL or an error's text: only which check
failed and a short reason a person can act on.

``/readyz`` is for a load balancer or an orchestrator that probes every few seconds, on every
web process. It is cheap: the database checks are two small queries; Venice is asked with one
unauthenticated ``GET /models`` at most once per ``CHEAPTOKENS_READYZ_VENICE_SECONDS`` per
process, however many accounts the shop has and however often it is probed (concurrent probes
wait for the one call in flight); and the whole answer is reused for a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cheaptokens import migrate
from cheaptokens.orders import ops
from cheaptokens.shop import Shop

router = APIRouter()

#: How long a complete /readyz answer is reused (a probe storm costs one check a second).
ANSWER_TTL = 1.0
VENICE_TIMEOUT = httpx.Timeout(2.0, connect=1.0)


@dataclass
class Check:
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail}


def venice_probe(base_url: str, *, http: httpx.Client | None = None) -> Callable[[], Check]:
    """One ``GET {base_url}/models``: public on Venice (no key is sent), the same for all
    accounts. Reachable when it answers below 500. ``http``: a client to use (tests)."""

    def get() -> httpx.Response:
        if http is not None:
            return http.get(f"{base_url}/models", params={"type": "text"}, timeout=VENICE_TIMEOUT)
        with httpx.Client(timeout=VENICE_TIMEOUT) as client:
            return client.get(f"{base_url}/models", params={"type": "text"})

    def probe() -> Check:
        try:
            r = get()
        except httpx.HTTPError as exc:
            return Check(False, f"unreachable ({type(exc).__name__})")
        if r.status_code >= 500:
            return Check(False, f"answers {r.status_code}")
        return Check(True, f"answers {r.status_code}")

    return probe


@dataclass
class Cached:
    """A value recomputed at most once per ``ttl`` seconds; callers during a computation wait
    for it instead of starting their own."""

    compute: Callable[[], Any]
    ttl: float
    monotonic: Callable[[], float] = time.monotonic
    _at: float = -1e18
    _value: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self) -> Any:
        with self._lock:
            if self._value is None or self.monotonic() - self._at >= self.ttl:
                self._value = self.compute()
                self._at = self.monotonic()
            return self._value


class Readiness:
    """The checks of ``/readyz`` for one shop (one per web process)."""

    def __init__(self, shop: Shop, *, venice: Callable[[], Check] | None = None) -> None:
        self.shop = shop
        settings = shop.settings
        self.stale = timedelta(seconds=settings.worker_stale_seconds)
        self.venice = Cached(
            venice or venice_probe(shop.buyer_base_url), ttl=settings.readyz_venice_seconds
        )
        self.answer = Cached(self._check_all, ttl=ANSWER_TTL)

    def check(self) -> tuple[bool, dict[str, Check]]:
        result: tuple[bool, dict[str, Check]] = self.answer.get()
        return result

    def _check_all(self) -> tuple[bool, dict[str, Check]]:
        checks: dict[str, Check] = {}
        try:
            revision = ops.database_revision(db=self.shop.db)
        except Exception as exc:  # any driver error means the same: not reachable
            checks["database"] = Check(False, f"unreachable ({type(exc).__name__})")
            checks["migrations"] = Check(False, "unknown (no database)")
            checks["worker"] = Check(False, "unknown (no database)")
        else:
            checks["database"] = Check(True, "reachable")
            wanted = migrate.head()
            checks["migrations"] = (
                Check(True, f"at {revision}")
                if revision == wanted
                else Check(False, f"at {revision or 'none'}, code needs {wanted}: run db upgrade")
            )
            checks["worker"] = self._worker()
        checks["venice"] = self.venice.get()
        return all(c.ok for c in checks.values()), checks

    def _worker(self) -> Check:
        now = self.shop.clock()
        try:
            beats = ops.read_heartbeats(db=self.shop.db, now=now, fresh_within=self.stale)
        except Exception as exc:
            return Check(False, f"unknown ({type(exc).__name__})")
        age = beats.age_seconds(now)
        if age is None:
            return Check(False, "no worker has ever beaten (is `cheaptokens worker` running?)")
        limit = self.stale.total_seconds()
        if age > limit:
            return Check(False, f"last heartbeat {age:.0f} s ago (more than {limit:.0f} s)")
        return Check(True, f"{beats.fresh} fresh, last heartbeat {age:.0f} s ago")


def readiness_of(request: Request) -> Readiness:
    found: Readiness = request.app.state.readiness
    return found


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    """The process is up and answers (nothing else is checked)."""
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request) -> JSONResponse:
    """200 when this process can serve buyers, else 503; each check with a short reason."""
    ok, checks = readiness_of(request).check()
    return JSONResponse(
        {
            "status": "ready" if ok else "not ready",
            "checks": {name: c.as_json() for name, c in checks.items()},
        },
        status_code=200 if ok else 503,
        headers={"Cache-Control": "no-store"},
    )
