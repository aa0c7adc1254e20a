"""``cheaptokens sandbox``: run the Venice emulator over HTTP with uvicorn.

Accounts come from ``--admin-key/--diem/--usd`` (one account), repeated
``--account KEY:DIEM[:USD]`` and/or a JSON ``--config`` file::

    {"accounts": [{"admin_key": "VENICE_ADMIN_KEY_sandbox_0000", "diem": "100", "usd": "0"}],
     "failed_request_threshold": 50, "seconds_per_million_tokens": 2.5}

``--state FILE`` keeps accounts, keys and charges in FILE across restarts; an account
given here whose ADMIN key is already in FILE keeps its saved state.
"""

from __future__ import annotations

import argparse
import json
import pathlib
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from cheaptokens.cli._common import KEEP_ALIVE_SECONDS

DEFAULT_ADMIN_KEY = "VENICE_ADMIN_KEY_sandbox_0000"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sandbox",
        help="run the local Venice API emulator",
        description=(
            "Run the Venice sandbox: Venice's key, billing, model and inference routes under "
            "/api/v1 and sandbox-only control routes under /_sandbox (see docs/sandbox.md). "
            f"Without any account option one account is made with admin key "
            f"{DEFAULT_ADMIN_KEY} and 100 DIEM a day."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (8765)")
    parser.add_argument("--admin-key", help="ADMIN key of one account (use an obviously fake one)")
    parser.add_argument("--diem", type=_decimal, help="that account's daily DIEM allocation")
    parser.add_argument(
        "--usd", type=_decimal, default=Decimal(0), help="that account's USD balance (0)"
    )
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="KEY:DIEM[:USD]",
        type=_account,
        help="add an account; may be repeated",
    )
    parser.add_argument(
        "--config",
        type=pathlib.Path,
        help='JSON file: {"accounts": [{"admin_key", "diem", "usd"}], '
        '"failed_request_threshold": N}',
    )
    parser.add_argument(
        "--now",
        type=_datetime,
        help="start the clock at this ISO-8601 UTC instant (it keeps running)",
    )
    parser.add_argument(
        "--failed-request-threshold",
        type=int,
        help="error budget: failures allowed per 30 s per key x model x user (50)",
    )
    parser.add_argument(
        "--seconds-per-million-tokens",
        type=_rate,
        help="run time of a call per million tokens, prompt + completion, real seconds "
        "(2.5: a 400,000-token call runs 1 s; 0: no wait)",
    )
    parser.add_argument(
        "--state",
        type=pathlib.Path,
        metavar="FILE",
        help="keep accounts, keys and charges in FILE across restarts (created if missing)",
    )
    parser.set_defaults(func=run)


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError("must be a non-negative number")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a non-negative number")
    return value


def _account(text: str) -> tuple[str, Decimal, Decimal]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise argparse.ArgumentTypeError("expected KEY:DIEM[:USD]")
    usd = _decimal(parts[2]) if len(parts) == 3 else Decimal(0)
    return parts[0], _decimal(parts[1]), usd


def _datetime(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError("give a timezone, e.g. ...Z")
    return when


def build_sandbox(args: argparse.Namespace) -> Any:
    """The :class:`Sandbox` the arguments describe (separate from ``run`` for tests)."""
    from cheaptokens.sandbox import AccountSpec, Sandbox

    specs: list[AccountSpec] = []
    threshold: int | None = args.failed_request_threshold
    rate: float | None = args.seconds_per_million_tokens
    if args.config is not None:
        config = json.loads(args.config.read_text(encoding="utf-8"))
        for entry in config.get("accounts", []):
            specs.append(
                AccountSpec(
                    admin_key=str(entry["admin_key"]),
                    diem=_decimal(str(entry.get("diem", 0))),
                    usd=_decimal(str(entry.get("usd", 0))),
                )
            )
        if threshold is None and "failed_request_threshold" in config:
            threshold = int(config["failed_request_threshold"])
        if rate is None and "seconds_per_million_tokens" in config:
            rate = _rate(str(config["seconds_per_million_tokens"]))
    specs += [AccountSpec(admin_key=k, diem=d, usd=u) for k, d, u in args.account]
    if args.admin_key is not None or args.diem is not None or not specs:
        specs.insert(
            0,
            AccountSpec(
                admin_key=args.admin_key or DEFAULT_ADMIN_KEY,
                diem=args.diem if args.diem is not None else Decimal(100),
                usd=args.usd,
            ),
        )
    kwargs: dict[str, Any] = {}
    if threshold is not None:
        kwargs["failed_request_threshold"] = threshold
    if rate is not None:
        kwargs["seconds_per_million_tokens"] = rate
    if args.state is not None:
        args.state.parent.mkdir(parents=True, exist_ok=True)
        kwargs["state_path"] = args.state
    return Sandbox(accounts=specs, now=args.now, frozen=False, **kwargs)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    try:
        sandbox = build_sandbox(args)
    except (OSError, ValueError, KeyError) as exc:
        print(f"cheaptokens sandbox: {exc}")
        return 2
    kept = f"; state in {args.state}" if args.state is not None else ""
    print(
        f"Venice sandbox on http://{args.host}:{args.port}/api/v1 "
        f"({len(sandbox.accounts_summary())} account(s)); control routes under /_sandbox{kept}",
        flush=True,
    )
    uvicorn.run(
        sandbox.app,
        host=args.host,
        port=args.port,
        log_level="info",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    return 0
