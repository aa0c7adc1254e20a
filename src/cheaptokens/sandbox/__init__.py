"""A faithful local emulator of the Venice.ai API (the "sandbox").

Usage::

    from cheaptokens.sandbox import Sandbox, AccountSpec
    sb = Sandbox(accounts=[AccountSpec(admin_key="VENICE_ADMIN_KEY_sandbox_0000",
                                       diem=Decimal("100"), usd=Decimal("0"))])
    sb.app          # ASGI app: Venice routes under /api/v1, an x402 facilitator under /x402,
                    # control routes under /_sandbox
    sb.clock        # injectable clock (set / advance / freeze)
    sb.faults       # fault injection

With ``state_path`` the accounts, keys and charges are loaded from that file at start and
written back atomically after every change (see :mod:`.state`).

See docs/sandbox.md for what is emulated and where the sandbox deliberately differs.
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from . import state
from .clock import Clock
from .control import control_routes
from .faults import DroppedResponse, FaultMiddleware, FaultRule, Faults, Sleep
from .ledger import Ledger
from .metering import DEFAULT_SECONDS_PER_MILLION_TOKENS
from .render import json_response
from .routes import DEFAULT_UNSUPPORTED_FEATURE_THRESHOLD, VeniceApi
from .state import StateError
from .x402 import PREFIX as X402_PREFIX
from .x402 import SandboxFacilitator

__all__ = [
    "DEFAULT_SECONDS_PER_MILLION_TOKENS",
    "AccountSpec",
    "Clock",
    "DroppedResponse",
    "FaultRule",
    "Faults",
    "Sandbox",
    "StateError",
]

API_PREFIX = "/api/v1"
#: docs/venice-facts.md §4.4: the post-snapshot threshold (the docs snapshot said 20).
DEFAULT_FAILED_REQUEST_THRESHOLD = 50


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """One Venice account: its ADMIN key, daily DIEM allocation and USD balance."""

    admin_key: str
    diem: Decimal
    usd: Decimal = Decimal(0)

    def __repr__(self) -> str:  # never print the admin key
        return f"AccountSpec(admin_key='…{self.admin_key[-4:]}', diem={self.diem}, usd={self.usd})"


class Sandbox:
    """The Venice emulator: in-memory state, a clock, faults and the ASGI app."""

    def __init__(
        self,
        accounts: Sequence[AccountSpec] = (),
        *,
        now: datetime | None = None,
        frozen: bool = True,
        failed_request_threshold: int = DEFAULT_FAILED_REQUEST_THRESHOLD,
        unsupported_feature_threshold: int = DEFAULT_UNSUPPORTED_FEATURE_THRESHOLD,
        sleep: Sleep | None = None,
        seconds_per_million_tokens: float = DEFAULT_SECONDS_PER_MILLION_TOKENS,
        state_path: pathlib.Path | None = None,
    ) -> None:
        """``state_path``: load the state from that file if it exists (an explicit ``now``
        still sets the clock; otherwise the saved clock is restored) and keep it there.
        Accounts whose ADMIN key is already in the state keep their saved state."""
        self.clock = Clock(now, frozen=frozen)
        self.faults = Faults()
        self.ledger = Ledger()
        self.state_path = state_path
        self._persist_lock = threading.Lock()
        self._saved: tuple[int, int, dict[str, object]] | None = None
        #: the x402 facilitator (docs/sandbox.md, "x402"): USDC wallets and EIP-3009 nonces
        self.x402 = SandboxFacilitator(on_change=self.persist)
        if state_path is not None:
            loaded = state.read(state_path)
            if loaded is not None:
                saved_accounts, saved_clock = loaded
                self.ledger.restore(saved_accounts)
                if now is None:
                    self.clock.restore(saved_clock)
            saved_x402 = state.read_x402(state_path)
            if saved_x402 is not None:
                self.x402.ledger.restore(saved_x402)
                self.x402.fund_refund_wallet()
        self.venice = VeniceApi(
            self.ledger,
            self.clock,
            failed_request_threshold=failed_request_threshold,
            unsupported_feature_threshold=unsupported_feature_threshold,
            seconds_per_million_tokens=seconds_per_million_tokens,
            on_change=self.persist,
        )
        for spec in accounts:
            with self.ledger.lock:
                if self.ledger.knows_secret(spec.admin_key):
                    continue  # kept from the state file, as it was
            self.add_account(admin_key=spec.admin_key, diem=spec.diem, usd=spec.usd)
        self.persist()
        starlette = Starlette(
            routes=[*self.venice.routes(API_PREFIX), *self.x402.routes(), *control_routes(self)],
            exception_handlers={HTTPException: _http_error},
        )
        kwargs: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
        self.app: ASGIApp = FaultMiddleware(
            starlette,
            faults=self.faults,
            clock=self.clock,
            prefix=(API_PREFIX, X402_PREFIX),
            **kwargs,
        )

    def add_account(
        self, *, admin_key: str, diem: Decimal, usd: Decimal = Decimal(0)
    ) -> dict[str, Any]:
        """Add an account at run time; returns its summary (no secrets)."""
        with self.ledger.lock:
            account = self.ledger.add_account(
                admin_key=admin_key, diem=diem, usd=usd, now=self.clock.now()
            )
        self.persist()
        return self._summary(account.id)

    def persist(self) -> None:
        """Write the state file if anything changed since the last write (no-op without
        ``state_path``). Called after every request that may change the ledger, before its
        response is sent, and after control-route changes."""
        if self.state_path is None:
            return
        with self._persist_lock:
            with self.ledger.lock, self.x402.ledger.lock:
                mark = (self.ledger.version, self.x402.ledger.version_no, self.clock.snapshot())
                if mark == self._saved:
                    return
                data = state.dump(
                    list(self.ledger.accounts.values()), mark[2], self.x402.ledger.dump()
                )
            state.write(self.state_path, data)
            self._saved = mark

    def accounts_summary(self) -> list[dict[str, Any]]:
        """Every account's balances and key counts (no secrets)."""
        with self.ledger.lock:
            return [self._summary(a) for a in self.ledger.accounts]

    def _summary(self, account_id: str) -> dict[str, Any]:
        now = self.clock.now()
        with self.ledger.lock:
            account = self.ledger.accounts[account_id]
            account.refresh(now)
            admin = (
                next(k for k in account.keys.values() if k.api_key_type == "ADMIN")
                if any(k.api_key_type == "ADMIN" for k in account.keys.values())
                else None
            )
            return {
                "id": account.id,
                "adminKeyLast6": admin.last6 if admin else None,
                "diemEpochAllocation": account.diem_allocation,
                "diem": account.diem,
                "usd": account.usd,
                "activeKeys": len(account.active_keys(now)),
                "totalKeys": len(account.keys),
            }


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and methods answer with a JSON StandardError, like Venice."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: "Not found", 405: "Method not allowed"}.get(status, "An unknown error occurred")
    return json_response({"error": message}, status)
