"""The sandbox's state file: accounts, keys and charges kept across restarts.

One JSON document, written atomically (a temporary file in the same directory, flushed
and fsynced, then ``os.replace``) after every request that changed the ledger, before
its response is sent: a key whose creation was answered is on disk. It holds

- the clock (the frozen instant, or the offset from real UTC time);
- per account: the DIEM allocation, DIEM left this epoch and the epoch's date (so the
  refill at 00:00 UTC still happens after a restart), USD, the creation times of the last
  minute (the 20-per-minute window);
- the x402 facilitator's USDC balances and used EIP-3009 nonces (:mod:`.x402`);
- per key: every field Venice shows plus the SHA-256 of its secret (never the secret: an
  ADMIN key given on the command line is matched by its hash), and its charges (older
  ones folded into lifetime totals, see :data:`~.ledger.FOLD_AFTER`).

Not kept: the per-minute request/token windows, the error budget and fault rules.
Money is written as decimal strings.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from collections import deque
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from .ledger import Account, Charge, Key

FORMAT = 1


class StateError(ValueError):
    """The state file cannot be read (it is left untouched)."""


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def dump(
    accounts: list[Account], clock: dict[str, object], x402: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The state as plain JSON data (call with the ledger lock held). ``x402``: the x402
    facilitator's USDC balances and used nonces (:mod:`.x402`)."""
    return {
        "format": FORMAT,
        "clock": clock,
        **({"x402": x402} if x402 is not None else {}),
        "accounts": [
            {
                "id": a.id,
                "diem_allocation": _money(a.diem_allocation),
                "diem": _money(a.diem),
                "usd": _money(a.usd),
                "epoch": a.epoch.isoformat(),
                "creations": [_time(t) for t in a.creations],
                "keys": [_dump_key(k) for k in a.keys.values()],
            }
            for a in accounts
        ],
    }


def _dump_key(key: Key) -> dict[str, Any]:
    return {
        "id": key.id,
        "secret_hash": key.secret_hash,
        "last6": key.last6,
        "api_key_type": key.api_key_type,
        "description": key.description,
        "created_at": _time(key.created_at),
        "expires_at": _time(key.expires_at),
        "limits": {c: _money(v) for c, v in key.limits.items()},
        "limit_period": key.limit_period,
        "model_privacy": key.model_privacy,
        "last_used_at": _time(key.last_used_at),
        "charges": [[_time(c.at), c.currency, _money(c.amount)] for c in key.charges],
        "archived": {c: _money(v) for c, v in key.archived.items()},
    }


def write(path: pathlib.Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old file or the new one."""
    text = json.dumps(data, separators=(",", ":"), sort_keys=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        pathlib.Path(temp).unlink(missing_ok=True)
        raise


def read(path: pathlib.Path) -> tuple[list[Account], dict[str, object]] | None:
    """The accounts and clock saved in ``path``; ``None`` if there is no such file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise StateError(f"{path}: unknown state format {data.get('format')!r}")
        accounts = [_load_account(a) for a in data["accounts"]]
        clock = data.get("clock") or {}
        if not isinstance(clock, dict):
            raise StateError(f"{path}: bad clock")
    except StateError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StateError(f"{path}: not a sandbox state file ({type(exc).__name__}: {exc})") from exc
    return accounts, clock


def read_x402(path: pathlib.Path) -> dict[str, Any] | None:
    """The x402 facilitator's part of the state file, if it has one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise StateError(f"{path}: not a sandbox state file ({exc})") from exc
    section = data.get("x402") if isinstance(data, dict) else None
    return section if isinstance(section, dict) else None


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


def _optional_decimal(value: Any) -> Decimal | None:
    return None if value is None else _decimal(value)


def _optional_time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _load_account(raw: dict[str, Any]) -> Account:
    account = Account(
        id=str(raw["id"]),
        diem_allocation=_decimal(raw["diem_allocation"]),
        usd=_decimal(raw["usd"]),
        diem=_decimal(raw["diem"]),
        epoch=date.fromisoformat(raw["epoch"]),
        creations=deque(datetime.fromisoformat(t) for t in raw.get("creations", [])),
    )
    for entry in raw["keys"]:
        key = Key(
            id=str(entry["id"]),
            account_id=account.id,
            secret_hash=str(entry["secret_hash"]),
            last6=str(entry["last6"]),
            api_key_type=str(entry["api_key_type"]),
            description=str(entry["description"]),
            created_at=datetime.fromisoformat(entry["created_at"]),
            expires_at=_optional_time(entry.get("expires_at")),
            limits={c: _optional_decimal(v) for c, v in entry["limits"].items()},
            limit_period=str(entry["limit_period"]),
            model_privacy=str(entry["model_privacy"]),
            last_used_at=_optional_time(entry.get("last_used_at")),
            charges=[
                Charge(datetime.fromisoformat(at), str(currency), _decimal(amount))
                for at, currency, amount in entry.get("charges", [])
            ],
            archived={c: _decimal(v) for c, v in entry.get("archived", {}).items()},
        )
        account.keys[key.id] = key
    return account
