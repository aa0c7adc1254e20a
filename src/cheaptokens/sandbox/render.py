"""Turning sandbox state into Venice's JSON shapes.

Money stays :class:`~decimal.Decimal` up to here; :func:`json_bytes` writes Decimals
as JSON numbers (their exact decimal text, never via float), as Venice sends them.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from starlette.responses import Response

from cheaptokens.times import iso_z

from .ledger import Key

FOUR_PLACES = Decimal("0.0001")


def decimal_text(value: Decimal) -> str:
    """``-20.5``, ``0``, ``12``: exact, never in exponent form (``0E-8``)."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _write(obj: Any, out: list[str]) -> None:
    if isinstance(obj, Decimal):
        out.append(decimal_text(obj))
    elif isinstance(obj, dict):
        out.append("{")
        for i, (k, v) in enumerate(obj.items()):
            out.append(("," if i else "") + json.dumps(str(k), ensure_ascii=False) + ":")
            _write(v, out)
        out.append("}")
    elif isinstance(obj, list | tuple):
        out.append("[")
        for i, v in enumerate(obj):
            if i:
                out.append(",")
            _write(v, out)
        out.append("]")
    else:
        out.append(json.dumps(obj, ensure_ascii=False))


def json_bytes(obj: Any) -> bytes:
    """Compact JSON with Decimals written as exact JSON numbers (never via float)."""
    out: list[str] = []
    _write(obj, out)
    return "".join(out).encode()


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json_bytes(obj), status_code=status, headers=headers, media_type="application/json"
    )


def iso(when: datetime | None) -> str | None:
    """``2026-12-31T23:59:59.000Z`` (docs/venice-facts.md §1.2: ISO with milliseconds)."""
    if when is None:
        return None
    return iso_z(when, "milliseconds")


def usage4(amount: Decimal) -> str:
    """Usage figures are strings with 4 decimals (docs/venice-facts.md §1.3)."""
    return str(amount.quantize(FOUR_PLACES, rounding=ROUND_HALF_UP))


def limits_json(key: Key) -> dict[str, Decimal | None]:
    return {c: key.limits.get(c) for c in ("usd", "diem", "vcu")}


def key_json(key: Key, now: datetime, *, with_usage: bool) -> dict[str, Any]:
    """The Key object of list / get (``with_usage``) and patch (without) responses."""
    out: dict[str, Any] = {
        "id": key.id,
        "apiKeyType": key.api_key_type,
        "description": key.description,
        "createdAt": iso(key.created_at),
        "expiresAt": iso(key.expires_at),
        "lastUsedAt": iso(key.last_used_at),
        "last6Chars": key.last6,
        "consumptionLimits": limits_json(key),  # plural in responses (docs/venice-facts.md §1.3)
        "limitPeriod": key.limit_period,
        "modelPrivacy": key.model_privacy,
    }
    if with_usage:
        week = now - timedelta(days=7)
        out["usage"] = {
            "trailingSevenDays": {
                "usd": usage4(key.spent("USD", week)),
                "vcu": usage4(Decimal(0)),
                "diem": usage4(key.spent("DIEM", week)),
            }
        }
        if key.has_limit():
            out["currentPeriodUsage"] = {
                "usd": usage4(key.period_spent("USD", now)),
                "diem": usage4(key.period_spent("DIEM", now)),
            }
    return out


def created_key_json(key: Key, secret: str) -> dict[str, Any]:
    """``POST /api_keys`` data: the only place the secret appears (singular
    ``consumptionLimit`` here, docs/venice-facts.md §1.3)."""
    return {
        "id": key.id,
        "apiKey": secret,
        "apiKeyType": key.api_key_type,
        "description": key.description,
        "expiresAt": iso(key.expires_at),
        "consumptionLimit": limits_json(key),
        "limitPeriod": key.limit_period,
        "modelPrivacy": key.model_privacy,
    }
