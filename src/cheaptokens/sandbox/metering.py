"""Admitted inference calls: they run for a while, then they are billed.

Venice checks a call at its start (auth, ``modelPrivacy``, rate limits, the key's cap and
the account's balance) and bills it after it ran (docs/venice-facts.md §2.3, §6
"Overshoot"). The sandbox does the same, with time in between:

1. the route handler *admits* the call under the ledger lock and returns one of the
   responses below, holding a :class:`Ticket` (the key, account and currency chosen);
2. the response, sent after the handler returned (so outside the lock), waits the call's
   run time with :func:`asyncio.sleep`: ``(prompt + completion tokens) x
   seconds_per_million_tokens / 1e6`` of **real wall time** (the sandbox clock may be
   frozen; it is not consulted for the wait);
3. then it bills, taking the ledger lock again only for the charge.

Meanwhile other requests run, including other calls on the same key, each admitted
against balances that do not yet carry the running calls' charges: parallel calls
overshoot a cap exactly as they do on Venice.

Billing rules when the client goes away (sandbox rules, docs/sandbox.md):

- non-streaming: the answer is computed whole; it is billed in full even if the client
  disconnects or the request task is cancelled during the run;
- streaming: the prompt is billed in full; completion tokens are billed as far as they were
  generated when the sandbox noticed the disconnect (``http.disconnect`` or a failing
  ``send``). A stream that runs to its end is billed just before its final usage chunk, so
  a client that has read ``cost`` sees the charge in the balance.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .catalogue import Model
from .ledger import Account, Key

#: A 400,000-token call runs about one second (docs/sandbox.md, "Timing").
DEFAULT_SECONDS_PER_MILLION_TOKENS = 2.5
#: Token waits shorter than this are accumulated rather than slept one by one.
_MIN_SLEEP = 0.001


def run_seconds(tokens: int, seconds_per_million_tokens: float) -> float:
    """How long a call over ``tokens`` tokens (prompt + completion) runs."""
    return max(0.0, tokens * seconds_per_million_tokens / 1_000_000)


@dataclass(slots=True)
class Ticket:
    """An admitted call: who pays, in which currency (chosen at admission), for what."""

    key: Key
    account: Account
    currency: str
    model: Model
    prompt_tokens: int
    billed: Decimal | None = None


#: Bills a ticket for ``completion_tokens`` (with its prompt) and returns the amount; a
#: ticket already billed is not billed again.
Biller = Callable[[Ticket, int], Decimal]


class MeteredResponse(Response):
    """A non-streaming answer that runs for ``seconds``, is billed, then sent."""

    def __init__(
        self,
        content: bytes,
        *,
        ticket: Ticket,
        completion_tokens: int,
        seconds: float,
        bill: Biller,
        headers: dict[str, str],
    ) -> None:
        super().__init__(content, 200, headers, media_type="application/json")
        self.ticket, self.completion_tokens = ticket, completion_tokens
        self.seconds, self._bill = seconds, bill

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if self.seconds > 0:
                await asyncio.sleep(self.seconds)
        finally:  # billed in full, even if the run is cancelled
            self._bill(self.ticket, self.completion_tokens)
        await super().__call__(scope, receive, send)


class MeteredStream(Response):
    """An SSE answer generated at the run rate: headers at once, the first chunk after the
    prompt's share of the run time, one chunk per completion token, billed at the end (or
    at the disconnect, for what ran)."""

    media_type = "text/event-stream"

    def __init__(
        self,
        *,
        ticket: Ticket,
        head: bytes,
        pieces: Iterable[bytes],
        tail: Iterable[bytes],
        prompt_seconds: float,
        token_seconds: float,
        bill: Biller,
        headers: dict[str, str],
        weights: Iterable[int] | None = None,
    ) -> None:
        """``weights``: the completion tokens each piece stands for (1 each by default; a
        tool call's opening chunk carries its function name's tokens)."""
        self.status_code = 200
        self.background = None
        self.init_headers(headers)  # no body, so no content-length
        self.ticket, self.head = ticket, head
        self.pieces, self.tail = list(pieces), list(tail)
        self.weights = [1] * len(self.pieces) if weights is None else list(weights)
        self.prompt_seconds, self.token_seconds, self._bill = prompt_seconds, token_seconds, bill
        self.generated = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()
        watcher = asyncio.ensure_future(_watch_disconnect(receive, gone))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if not await _run(self.prompt_seconds, gone):
                return
            await _body(send, self.head)
            owed = 0.0
            for piece, tokens in zip(self.pieces, self.weights, strict=True):
                owed += self.token_seconds * tokens
                if owed >= _MIN_SLEEP or gone.is_set():
                    if not await _run(owed, gone):
                        return
                    owed = 0.0
                self.generated += tokens
                await _body(send, piece)
            self._bill(self.ticket, self.generated)
            for chunk in self.tail:
                await _body(send, chunk)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # ASGI >= 2.4 servers raise on sending to a closed connection
            return
        finally:  # what ran is billed, whatever ended the stream (billing is idempotent)
            watcher.cancel()
            self._bill(self.ticket, self.generated)


async def _body(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _run(seconds: float, gone: asyncio.Event) -> bool:
    """Wait ``seconds`` of run time; False if the client disconnected meanwhile."""
    if gone.is_set():
        return False
    if seconds <= 0:
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(gone.wait(), timeout=seconds)
    return not gone.is_set()


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while True:
        message: Any = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return
