"""Strict validation of request bodies, the way Venice (zod) reports problems.

Every failure becomes a 400 ``DetailedError`` (``details`` + ``issues``). Limits are
parsed as :class:`~decimal.Decimal` (the JSON is decoded with ``parse_float=Decimal``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .errors import SandboxError, detailed, issue

MAX_LIMIT = Decimal(9_999_999_999)
DESCRIPTION_MAX = 64
KEY_TYPES = ("INFERENCE", "ADMIN")
LIMIT_PERIODS = ("EPOCH", "MONTH", "LIFETIME")
MODEL_PRIVACY = ("ALL", "PRIVATE_TEXT", "PRIVATE_ONLY")
CURRENCIES = ("usd", "diem", "vcu")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$")

#: Sentinel for "field not sent" (distinct from an explicit ``null``).
UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class KeyFields:
    """Validated fields of a create or patch body; ``UNSET`` where not sent."""

    api_key_type: str = UNSET
    description: str = UNSET
    limits: dict[str, Decimal | None] = UNSET  # only the currencies that were sent
    limit_period: str = UNSET
    model_privacy: str = UNSET
    expires_at: datetime | None = UNSET
    id: str = UNSET


def _unknown_keys(body: dict[str, Any], allowed: tuple[str, ...]) -> list[dict[str, Any]]:
    extra = [k for k in body if k not in allowed]
    if not extra:
        return []
    names = ", ".join(f"'{k}'" for k in extra)
    return [issue([], f"Unrecognized key(s) in object: {names}", "unrecognized_keys", keys=extra)]


def _enum(
    body: dict[str, Any],
    name: str,
    options: tuple[str, ...],
    out: dict[str, Any],
    problems: list[dict[str, Any]],
) -> None:
    if name not in body:
        return
    value = body[name]
    if value not in options:
        expected = " | ".join(f"'{o}'" for o in options)
        problems.append(
            issue(
                [name],
                f"Invalid enum value. Expected {expected}, received '{value}'",
                "invalid_enum_value",
                options=list(options),
            )
        )
    else:
        out[name] = value


def parse_expires_at(value: Any, *, allow_null: bool) -> datetime | None:
    """``""`` (and ``null`` on PATCH) mean no expiry; ``YYYY-MM-DD`` is read as 00:00 UTC
    of that day (sandbox reading: SPEC does not say which instant of the day)."""
    if value == "" or (value is None and allow_null):
        return None
    if isinstance(value, str) and _DATE_RE.match(value):
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    if isinstance(value, str) and _DATETIME_RE.match(value):
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if "." in value else "%Y-%m-%dT%H:%M:%SZ"
        return datetime.strptime(value, fmt).replace(tzinfo=UTC)
    raise ValueError("bad expiresAt")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


def _limits(value: Any, problems: list[dict[str, Any]]) -> dict[str, Decimal | None] | None:
    if not isinstance(value, dict):
        problems.append(issue(["consumptionLimit"], "Expected object", "invalid_type"))
        return None
    out: dict[str, Decimal | None] = {}
    # SPEC has no additionalProperties:false on consumptionLimit, so (like zod's
    # default) unknown currencies are ignored rather than rejected.
    for cur in CURRENCIES:
        if cur not in value:
            continue
        amount = value[cur]
        if amount is None:
            out[cur] = None
        elif _is_number(amount) and 0 <= Decimal(amount) <= MAX_LIMIT:
            out[cur] = Decimal(amount)
        else:
            problems.append(
                issue(
                    ["consumptionLimit", cur], "Expected a number between 0 and 9999999999, or null"
                )
            )
    return out


def _common(body: dict[str, Any], *, patch: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out: dict[str, Any] = {}
    problems: list[dict[str, Any]] = []
    if "description" in body:
        desc = body["description"]
        if not isinstance(desc, str):
            problems.append(issue(["description"], "Expected string", "invalid_type"))
        elif len(desc) > DESCRIPTION_MAX:
            problems.append(
                issue(
                    ["description"],
                    "String must contain at most 64 character(s)",
                    "too_big",
                    maximum=DESCRIPTION_MAX,
                )
            )
        else:
            out["description"] = desc
    if "consumptionLimit" in body:
        limits = _limits(body["consumptionLimit"], problems)
        if limits is not None:
            out["limits"] = limits
    _enum(body, "limitPeriod", LIMIT_PERIODS, out, problems)
    _enum(body, "modelPrivacy", MODEL_PRIVACY, out, problems)
    if "expiresAt" in body:
        try:
            out["expires_at"] = parse_expires_at(body["expiresAt"], allow_null=patch)
        except ValueError:
            problems.append(issue(["expiresAt"], "Invalid input", "invalid_union"))
    out["limit_period"] = out.pop("limitPeriod", UNSET)
    out["model_privacy"] = out.pop("modelPrivacy", UNSET)
    return out, problems


def _need_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise detailed([issue([], "Expected object", "invalid_type")])
    obj: dict[str, Any] = body
    return obj


def parse_create(body: Any) -> KeyFields:
    """``POST /api_keys`` (docs/venice-facts.md §1.2): strict, ``apiKeyType`` and
    ``description`` required."""
    body = _need_object(body)
    allowed = (
        "apiKeyType",
        "description",
        "consumptionLimit",
        "limitPeriod",
        "modelPrivacy",
        "expiresAt",
    )
    out, problems = _common(body, patch=False)
    problems = _unknown_keys(body, allowed) + problems
    for required in ("apiKeyType", "description"):
        if required not in body:
            problems.append(issue([required], "Required", "invalid_type"))
    _enum(body, "apiKeyType", KEY_TYPES, out, problems)
    if problems:
        raise detailed(problems)
    return KeyFields(api_key_type=out.pop("apiKeyType"), **out)


def parse_patch(body: Any) -> KeyFields:
    """``PATCH /api_keys`` (docs/venice-facts.md §1.4): ``id`` required; ``apiKeyType``
    cannot change."""
    body = _need_object(body)
    allowed = ("id", "description", "consumptionLimit", "limitPeriod", "modelPrivacy", "expiresAt")
    out, problems = _common(body, patch=True)
    problems = _unknown_keys(body, allowed) + problems
    if not isinstance(body.get("id"), str):
        problems.append(
            issue(["id"], "Required" if "id" not in body else "Expected string", "invalid_type")
        )
    if problems:
        raise detailed(problems)
    return KeyFields(id=body["id"], **out)


def require_fields(
    body: Any, allowed: tuple[str, ...], required: tuple[str, ...]
) -> dict[str, Any]:
    """A strict top-level object check for inference bodies (docs/venice-facts.md §3.1)."""
    obj = _need_object(body)
    problems = _unknown_keys(obj, allowed)
    problems += [issue([r], "Required", "invalid_type") for r in required if r not in obj]
    if problems:
        raise detailed(problems)
    return obj


def fail(path: list[str | int], message: str) -> SandboxError:
    """A one-issue 400 DetailedError."""
    return detailed([issue(path, message)])
