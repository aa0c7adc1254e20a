"""Sandbox-only control routes under ``/_sandbox`` (no auth; never part of Venice).

- ``GET/POST /_sandbox/clock``: read, set (``{"now": ISO}``) or advance
  (``{"advance_seconds": N}``) the clock, optional ``"frozen": bool``;
- ``GET/POST/DELETE /_sandbox/faults``: list, add (a rule or a list of rules, or
  ``{"faults": [...]}``) and clear fault rules (see :mod:`.faults`);
- ``GET/POST /_sandbox/accounts``: list accounts (balances, key counts, no secrets)
  and add one (``{"admin_key", "diem", "usd"}``);
- ``POST /_sandbox/x402/wallets`` (``{"address": "0x…", "usdc": "25.00"}``) sets a wallet's
  USDC balance on the x402 facilitator's pretend chain; ``GET /_sandbox/x402/wallets/{address}``
  reads it (``{"address", "usdc"}``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .clock import Clock
from .faults import FaultRule, Faults
from .render import iso, json_response
from .x402 import SandboxFacilitator


class Controlled(Protocol):
    """What the control routes drive (the :class:`~cheaptokens.sandbox.Sandbox`)."""

    clock: Clock
    faults: Faults
    x402: SandboxFacilitator

    def accounts_summary(self) -> list[dict[str, Any]]: ...

    def persist(self) -> None: ...

    def add_account(
        self, *, admin_key: str, diem: Decimal, usd: Decimal = ...
    ) -> dict[str, Any]: ...


def _bad(message: str) -> Response:
    return json_response({"error": message}, 400)


async def _body(request: Request) -> Any:
    raw = await request.body()
    return json.loads(raw, parse_float=Decimal) if raw.strip() else {}


def control_routes(sandbox: Controlled, prefix: str = "/_sandbox") -> list[Route]:
    """The control routes bound to ``sandbox``."""

    def guarded(
        fn: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await fn(request)
            except (ValueError, TypeError, InvalidOperation) as exc:
                return _bad(str(exc) or "invalid request")

        return run

    def clock_state() -> dict[str, Any]:
        return {"now": iso(sandbox.clock.now()), "frozen": sandbox.clock.frozen}

    async def get_clock(request: Request) -> Response:
        return json_response(clock_state())

    async def set_clock(request: Request) -> Response:
        body = await _body(request)
        if not isinstance(body, dict):
            return _bad("expected an object")
        frozen = body.get("frozen")
        if frozen is not None and not isinstance(frozen, bool):
            return _bad("frozen must be a boolean")
        if "now" in body:
            when = datetime.fromisoformat(str(body["now"]).replace("Z", "+00:00"))
            if when.tzinfo is None:
                return _bad("now must carry a timezone (use ...Z for UTC)")
            sandbox.clock.set(when, frozen=frozen)
        elif "advance_seconds" in body:
            sandbox.clock.advance(float(body["advance_seconds"]), frozen=frozen)
        elif frozen is not None:
            sandbox.clock.set(sandbox.clock.now(), frozen=frozen)
        else:
            return _bad("send now, advance_seconds or frozen")
        sandbox.persist()
        return json_response(clock_state())

    def faults_state() -> Response:
        return json_response({"faults": [r.to_json() for r in sandbox.faults.rules()]})

    async def get_faults(request: Request) -> Response:
        return faults_state()

    async def add_faults(request: Request) -> Response:
        body = await _body(request)
        if isinstance(body, dict) and "faults" in body:
            body = body["faults"]
        rules = body if isinstance(body, list) else [body]
        parsed = [FaultRule.from_json(_plain(r)) for r in rules]
        sandbox.faults.add(*parsed)
        return faults_state()

    async def clear_faults(request: Request) -> Response:
        sandbox.faults.clear()
        return faults_state()

    async def get_accounts(request: Request) -> Response:
        return json_response({"data": sandbox.accounts_summary()})

    async def add_account(request: Request) -> Response:
        body = await _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("admin_key"), str):
            return _bad("admin_key (string) is required")
        summary = sandbox.add_account(
            admin_key=body["admin_key"],
            diem=Decimal(str(body.get("diem", 0))),
            usd=Decimal(str(body.get("usd", 0))),
        )
        return json_response(summary, 201)

    async def fund_wallet(request: Request) -> Response:
        body = await _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("address"), str):
            return _bad('send {"address": "0x…", "usdc": "25.00"}')
        return json_response(sandbox.x402.fund(body["address"], body.get("usdc", "0")), 200)

    async def get_wallet(request: Request) -> Response:
        return json_response(sandbox.x402.wallet(request.path_params["address"]))

    g = guarded
    return [
        Route(f"{prefix}/x402/wallets", g(fund_wallet), methods=["POST"]),
        Route(f"{prefix}/x402/wallets/{{address}}", g(get_wallet), methods=["GET"]),
        Route(f"{prefix}/clock", g(get_clock), methods=["GET"]),
        Route(f"{prefix}/clock", g(set_clock), methods=["POST"]),
        Route(f"{prefix}/faults", g(get_faults), methods=["GET"]),
        Route(f"{prefix}/faults", g(add_faults), methods=["POST"]),
        Route(f"{prefix}/faults", g(clear_faults), methods=["DELETE"]),
        Route(f"{prefix}/accounts", g(get_accounts), methods=["GET"]),
        Route(f"{prefix}/accounts", g(add_account), methods=["POST"]),
    ]


def _plain(raw: Any) -> Any:
    """Decimals from the JSON parser back to ints where the rule wants integers."""
    if isinstance(raw, dict):
        return {
            k: (int(v) if isinstance(v, Decimal) and v == v.to_integral_value() else v)
            for k, v in raw.items()
        }
    return raw
