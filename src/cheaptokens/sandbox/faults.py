"""Fault injection for the Venice routes and the x402 facilitator (sandbox only).

A rule matches requests by ``method`` and ``path`` (exact, or a ``*`` glob) and applies
to the next ``count`` matching calls (``count: null`` = every call until cleared):

- ``latency_ms``: wait that long before Venice handles the call;
- ``status`` (e.g. 429, 500, 503): answer with that error *instead of* performing the
  action (a 429 carries Venice's reset headers and ``Retry-After``);
- ``drop: true``: Venice performs the action, then the response is lost: the server
  starts the response and breaks the connection, so a client sees a transport error
  (over uvicorn a closed connection; in-process an :class:`httpx.RemoteProtocolError`).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .clock import Clock

_DEFAULT_MESSAGES = {
    429: "Rate limit exceeded",
    500: "An unknown error occurred",
    502: "Bad gateway",
    503: "The model is currently at capacity. Please try again later.",
    504: "Request timed out. Please use stream=true for long requests.",
}


class DroppedResponse(httpx.RemoteProtocolError):
    """Raised by the sandbox after a ``drop`` fault: the response never arrives."""


@dataclass(slots=True)
class FaultRule:
    """One injected fault; see the module docstring."""

    method: str | None = None
    path: str | None = None
    count: int | None = 1
    status: int | None = None
    error: str | None = None
    retry_after: int | None = None
    latency_ms: int = 0
    drop: bool = False

    @classmethod
    def from_json(cls, raw: Any) -> FaultRule:
        if not isinstance(raw, dict):
            raise ValueError("each fault must be an object")
        allowed = {
            "method",
            "path",
            "count",
            "status",
            "error",
            "retry_after",
            "latency_ms",
            "drop",
        }
        unknown = set(raw) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        rule = cls(
            method=raw.get("method"),
            path=raw.get("path"),
            count=raw.get("count", 1),
            status=raw.get("status"),
            error=raw.get("error"),
            retry_after=raw.get("retry_after"),
            latency_ms=raw.get("latency_ms", 0),
            drop=bool(raw.get("drop", False)),
        )
        if rule.status is not None and not (
            isinstance(rule.status, int) and 400 <= rule.status <= 599
        ):
            raise ValueError("status must be a 4xx or 5xx integer")
        if rule.count is not None and (not isinstance(rule.count, int) or rule.count < 1):
            raise ValueError("count must be a positive integer or null")
        if not isinstance(rule.latency_ms, int) or rule.latency_ms < 0:
            raise ValueError("latency_ms must be a non-negative integer")
        if rule.status is None and not rule.drop and not rule.latency_ms:
            raise ValueError("a fault needs status, latency_ms or drop")
        return rule

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "count": self.count,
            "status": self.status,
            "error": self.error,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
            "drop": self.drop,
        }

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or fnmatch.fnmatchcase(path, self.path)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the faults do to one call."""

    latency_ms: int = 0
    status_rule: FaultRule | None = None
    drop: bool = False


class Faults:
    """The active fault rules (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, *rules: FaultRule | dict[str, Any]) -> None:
        parsed = [r if isinstance(r, FaultRule) else FaultRule.from_json(r) for r in rules]
        with self._lock:
            self._rules.extend(parsed)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, method: str, path: str) -> Decision:
        """Consume one use of every rule matching this call and combine them."""
        latency, status_rule, drop = 0, None, False
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(method, path):
                    continue
                latency += rule.latency_ms
                if rule.status is not None and status_rule is None and not drop:
                    status_rule = rule
                elif rule.drop and status_rule is None:
                    drop = True
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
        return Decision(latency, status_rule, drop)


Sleep = Callable[[float], Awaitable[None]]


class FaultMiddleware:
    """ASGI middleware applying :class:`Faults` to requests under ``prefix`` (one or more)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        faults: Faults,
        clock: Clock,
        prefix: str | tuple[str, ...],
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.app, self.faults, self.clock = app, faults, clock
        self.prefix, self.sleep = prefix, sleep

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        decision = self.faults.take(scope["method"], scope["path"])
        if decision.latency_ms:
            await self.sleep(decision.latency_ms / 1000)
        if decision.status_rule is not None:
            await self._send_status(decision.status_rule, send)
        elif decision.drop:
            await self._run_and_drop(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _send_status(self, rule: FaultRule, send: Send) -> None:
        status = rule.status or 500
        message = rule.error or _DEFAULT_MESSAGES.get(status, "Sandbox injected fault")
        body = json.dumps({"error": message}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 429 or rule.retry_after is not None:
            wait = rule.retry_after if rule.retry_after is not None else 30
            reset_ms = math.ceil((self.clock.now().timestamp() + wait) * 1000)
            headers.append((b"retry-after", str(wait).encode()))
            if status == 429:
                headers += [
                    (b"x-ratelimit-remaining-requests", b"0"),
                    (b"x-ratelimit-reset-requests", str(reset_ms).encode()),
                    (b"x-ratelimit-type", b"api_key"),
                ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _run_and_drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Let Venice do the work, then break the connection mid-response."""
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self.app(scope, receive, capture)
        start = next((m for m in messages if m["type"] == "http.response.start"), None)
        if start is not None:
            body = b"".join(
                m.get("body", b"") for m in messages if m["type"] == "http.response.body"
            )
            headers = [
                (k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"
            ]
            headers.append((b"content-length", str(len(body) + 1).encode()))
            await send({**start, "headers": headers})
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
        raise DroppedResponse("sandbox fault: the response was dropped")
