"""The published pricing curve: (time, unsold credit, published parameters) -> price.

Price per $1 of credit (in cents) is::

    list × clamp((a + b·g(h)) × (X̂(t) / x)^β, floor, 1)

* ``h``  hours left until the next 00:00 UTC (in (0, 24]);
* ``g(h) = (1 − e^(−h/6)) / (1 − e^(−4))``: how useful credit that expires in ``h`` hours is
  (g(24) = 1, g(0) = 0);
* ``x``  credit still unsold today (cents);
* ``X̂(t)`` planned remaining credit at ``t = 24 − h`` hours into the UTC day: ``capacity ×``
  the straight-line interpolation of the 25 published plan points (hours 0..24);
* ``β``  the scarcity exponent (0.25 by default): sold faster than planned -> dearer.

Everything is computed in :data:`PRICING_CONTEXT` (28 significant digits, half-even) with the
correctly rounded ``Decimal.exp``/``Decimal.ln`` (``r^β`` is evaluated as ``exp(β·ln r)``), and
the multiplier is truncated (ROUND_FLOOR) to 6 decimal places *before* the clamp, so a buyer
with the parameter set (found by its hash) can recompute every quote exactly. The module is
pure: no clock, no I/O — ``now`` is always an argument (aware, UTC).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

from cheaptokens.times import day_start, iso_z, next_midnight, require_utc

#: The one arithmetic context of the published formula.
PRICING_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)
#: The multiplier is truncated to this many decimal places before clamping.
FRACTION_QUANTUM = Decimal("0.000001")
#: Version tag inside the canonical JSON (part of the hash).
FORMAT_VERSION = "cheaptokens.pricing/1"
PLAN_POINTS = 25

_ZERO = Decimal(0)
_ONE = Decimal(1)

# Default curve (what ``default_params`` publishes before the engine has re-planned). These
# are the engine's 00:00 solution for a base day (capacity ≈ 1/4 of expected demand).
DEFAULT_LIST_CENTS = 100
DEFAULT_A = Decimal("0.20")
DEFAULT_B = Decimal("0.55")
DEFAULT_BETA = Decimal("0.25")
DEFAULT_FLOOR = Decimal("0.05")


@dataclass(frozen=True, slots=True)
class PricingParams:
    """One published parameter set of the curve, valid on ``[valid_from, valid_until)``.

    ``plan[i]`` is the planned unsold fraction of ``capacity_cents`` at ``i`` hours after
    the 00:00 UTC that starts the day of ``valid_from``.
    """

    a: Decimal
    b: Decimal
    beta: Decimal
    floor: Decimal
    plan: tuple[Decimal, ...]
    capacity_cents: int
    valid_from: datetime
    valid_until: datetime
    list_cents: int = DEFAULT_LIST_CENTS

    def __post_init__(self) -> None:
        for name in ("a", "b", "beta", "floor"):
            if not isinstance(getattr(self, name), Decimal):
                raise TypeError(f"{name} must be a Decimal")
        if len(self.plan) != PLAN_POINTS:
            raise ValueError(f"plan must have {PLAN_POINTS} points (hours 0..24)")
        if any(not isinstance(p, Decimal) or not (_ZERO <= p <= _ONE) for p in self.plan):
            raise ValueError("plan points must be Decimal fractions in [0, 1]")
        if not (_ZERO < self.floor <= _ONE):
            raise ValueError("floor must be in (0, 1]")
        if self.beta < _ZERO:
            raise ValueError("beta must be >= 0")
        if self.capacity_cents <= 0 or self.list_cents <= 0:
            raise ValueError("capacity_cents and list_cents must be positive")
        for when in (self.valid_from, self.valid_until):
            if when.tzinfo is None or when.utcoffset() != timedelta(0):
                raise ValueError("validity bounds must be aware UTC datetimes")
        if not self.valid_from < self.valid_until:
            raise ValueError("valid_from must precede valid_until")
        if self.valid_until > day_start(self.valid_from) + timedelta(days=1):
            raise ValueError("a parameter set cannot outlive its UTC day")

    @property
    def day_start(self) -> datetime:
        """00:00 UTC of the day the plan describes."""
        return day_start(self.valid_from)


# ---------------------------------------------------------------------------- serialisation


def _dec(d: Decimal) -> str:
    """Canonical text of a Decimal: plain notation, no trailing zeros (0.50 -> "0.5")."""
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _ts(when: datetime) -> str:
    return iso_z(when, "microseconds")


def params_to_dict(params: PricingParams) -> dict[str, Any]:
    """The canonical, JSON-ready form (Decimals as plain strings, times as UTC ``…Z``)."""
    return {
        "version": FORMAT_VERSION,
        "list_cents": params.list_cents,
        "a": _dec(params.a),
        "b": _dec(params.b),
        "beta": _dec(params.beta),
        "floor": _dec(params.floor),
        "plan": [_dec(p) for p in params.plan],
        "capacity_cents": params.capacity_cents,
        "valid_from": _ts(params.valid_from),
        "valid_until": _ts(params.valid_until),
    }


def params_to_json(params: PricingParams) -> str:
    """Canonical JSON: sorted keys, no whitespace, ASCII. Equal params -> equal bytes."""
    return json.dumps(params_to_dict(params), sort_keys=True, separators=(",", ":"))


def params_from_json(text: str) -> PricingParams:
    """Inverse of :func:`params_to_json` (what a buyer uses after fetching a hash's params)."""
    raw = json.loads(text)
    if raw.get("version") != FORMAT_VERSION:
        raise ValueError("unknown pricing parameter format")

    def ts(s: str) -> datetime:
        return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)

    return PricingParams(
        a=Decimal(raw["a"]),
        b=Decimal(raw["b"]),
        beta=Decimal(raw["beta"]),
        floor=Decimal(raw["floor"]),
        plan=tuple(Decimal(p) for p in raw["plan"]),
        capacity_cents=int(raw["capacity_cents"]),
        valid_from=ts(raw["valid_from"]),
        valid_until=ts(raw["valid_until"]),
        list_cents=int(raw["list_cents"]),
    )


def params_hash(params: PricingParams) -> str:
    """sha256 hex digest of the canonical JSON: the public name of a parameter set."""
    return hashlib.sha256(params_to_json(params).encode("ascii")).hexdigest()


# ----------------------------------------------------------------------------------- time


def hours_left(now: datetime) -> Decimal:
    """Exact hours from ``now`` to the next 00:00 UTC, in (0, 24]."""
    delta = next_midnight(now) - now
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    with localcontext(PRICING_CONTEXT):
        return Decimal(micros) / Decimal(3_600_000_000)


def usefulness(h: Decimal) -> Decimal:
    """``g(h) = (1 − e^(−h/6)) / (1 − e^(−4))`` in :data:`PRICING_CONTEXT`."""
    with localcontext(PRICING_CONTEXT):
        return (_ONE - (-h / 6).exp()) / (_ONE - Decimal(-4).exp())


def planned_remaining_cents(params: PricingParams, *, now: datetime) -> Decimal:
    """X̂(t): capacity × the plan interpolated linearly at ``t = 24 − h`` hours."""
    with localcontext(PRICING_CONTEXT):
        t = 24 - hours_left(now)
        i = min(int(t), PLAN_POINTS - 2)
        frac = t - i
        lo, hi = params.plan[i], params.plan[i + 1]
        return params.capacity_cents * (lo + (hi - lo) * frac)


# ---------------------------------------------------------------------------------- price


def _check_validity(params: PricingParams, now: datetime) -> None:
    require_utc(now)
    if not (params.valid_from <= now < params.valid_until):
        raise ValueError("now is outside the parameter set's validity")


def price_fraction(params: PricingParams, *, now: datetime, remaining_cents: int) -> Decimal:
    """The multiplier ``clamp((a + b·g(h)) × (X̂/x)^β, floor, 1)`` (6 decimal places).

    ``x <= 0`` (nothing left) prices at list (1); ``X̂ = 0`` or ``a + b·g(h) <= 0`` (e.g.
    ``h -> 0`` with ``a = 0``) prices at the floor.
    """
    _check_validity(params, now)
    if remaining_cents <= 0:
        return _ONE
    with localcontext(PRICING_CONTEXT):
        base = params.a + params.b * usefulness(hours_left(now))
        planned = planned_remaining_cents(params, now=now)
        if base <= 0 or planned <= 0:
            raw = _ZERO
        elif params.beta == 0:
            raw = base
        else:
            ratio = planned / Decimal(remaining_cents)
            raw = base * (params.beta * ratio.ln()).exp()
        raw = raw.quantize(FRACTION_QUANTUM, rounding=ROUND_FLOOR)
    return max(params.floor, min(_ONE, raw))


def discount(params: PricingParams, *, now: datetime, remaining_cents: int) -> Decimal:
    """``1 − price/list``: the share off list price at this moment."""
    return _ONE - price_fraction(params, now=now, remaining_cents=remaining_cents)


def min_credit_cents(params: PricingParams) -> int:
    """Smallest amount whose formula price is at least 1 cent even at the floor.

    If the shop's minimum order is at least this, the 1-cent minimum of
    :func:`quote_price_cents` never applies.
    """
    with localcontext(PRICING_CONTEXT):
        need = Decimal(100) / (params.list_cents * params.floor)
        return int(need.to_integral_value(rounding=ROUND_CEILING))


def quote_price_cents(
    params: PricingParams, *, now: datetime, remaining_cents: int, credit_cents: int
) -> int:
    """What the buyer pays, in cents, for ``credit_cents`` of credit.

    Rule: ``floor(credit_cents × list_cents/100 × fraction)`` — never above the formula — with
    one documented exception: a positive amount costs at least 1 cent (only reachable below
    :func:`min_credit_cents`).
    """
    if credit_cents < 0:
        raise ValueError("credit_cents must be >= 0")
    if credit_cents == 0:
        return 0
    fraction = price_fraction(params, now=now, remaining_cents=remaining_cents)
    with localcontext(PRICING_CONTEXT):
        exact = Decimal(credit_cents) * params.list_cents * fraction / 100
        cents = int(exact.to_integral_value(rounding=ROUND_FLOOR))
    return max(1, cents)


# ------------------------------------------------------------------------------- defaults


def default_plan() -> tuple[Decimal, ...]:
    """Planned unsold fraction per hour: proportional to the default arrival shape's
    remaining demand (so the plan sells out exactly at 00:00)."""
    from cheaptokens.pricing.shape import DEFAULT_SHAPE

    cdf = DEFAULT_SHAPE.cdf_at_hours()
    return tuple(Decimal(repr(round(1.0 - c, 6))) for c in cdf)


def default_params(
    *,
    capacity_cents: int,
    day: date,
    a: Decimal = DEFAULT_A,
    b: Decimal = DEFAULT_B,
    beta: Decimal = DEFAULT_BETA,
    floor: Decimal = DEFAULT_FLOOR,
    list_cents: int = DEFAULT_LIST_CENTS,
    plan: tuple[Decimal, ...] | None = None,
) -> PricingParams:
    """A whole-day parameter set from configured values (used when no engine has published)."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return PricingParams(
        a=a,
        b=b,
        beta=beta,
        floor=floor,
        plan=plan if plan is not None else default_plan(),
        capacity_cents=capacity_cents,
        valid_from=start,
        valid_until=start + timedelta(days=1),
        list_cents=list_cents,
    )
