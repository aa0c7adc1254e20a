"""The arrival shape: when during the UTC day buyers ask for quotes (operator-configured).

A shape is a constant plus Gaussian bumps over the hour of the day ``t`` in [0, 24)::

    raw(t) = base + Σ weight_i · exp(−½((t − centre_i)/width_i)²)

evaluated at the 1,440 minute midpoints ``(m + 0.5)/60`` and normalised to a distribution over
the minutes. The default is the benchmark's shape (a small night bump, a European late-morning
bump and a bigger American evening bump). Floats are fine here: this is a forecast, not money.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class ArrivalShape:
    """``base`` plus ``bumps`` given as ``(weight, centre_hour, width_hours)``, plus an
    optional per-hour histogram ``hourly`` (24 weights, one per UTC hour: what the nightly
    refit learns from the shop's own requests)."""

    base: float = 0.25
    bumps: tuple[tuple[float, float, float], ...] = (
        (0.5, 3.0, 2.5),
        (1.0, 11.0, 3.0),
        (1.4, 18.5, 3.0),
    )
    hourly: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.base < 0 or any(w < 0 or s <= 0 for w, _, s in self.bumps):
            raise ValueError("shape weights must be >= 0 and widths > 0")
        if self.hourly and (len(self.hourly) != 24 or any(h < 0 for h in self.hourly)):
            raise ValueError("hourly must be 24 weights >= 0")
        if (
            self.base == 0
            and not any(w > 0 for w, _, _ in self.bumps)
            and not any(h > 0 for h in self.hourly)
        ):
            raise ValueError("shape must have some mass")

    def raw(self, t: float) -> float:
        """Unnormalised arrival intensity at hour ``t``."""
        bumps = sum(w * math.exp(-0.5 * ((t - c) / s) ** 2) for w, c, s in self.bumps)
        hist = self.hourly[min(23, max(0, int(t)))] if self.hourly else 0.0
        return self.base + bumps + hist

    def hour_shares(self) -> tuple[float, ...]:
        """Share of the day's arrivals in each UTC hour."""
        cdf = self.cdf_at_hours()
        return tuple(cdf[h + 1] - cdf[h] for h in range(24))

    def to_dict(self) -> dict[str, object]:
        return {
            "base": self.base,
            "bumps": [list(b) for b in self.bumps],
            "hourly": list(self.hourly),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> ArrivalShape:
        bumps = raw.get("bumps", [])
        hourly = raw.get("hourly", [])
        assert isinstance(bumps, list) and isinstance(hourly, list)
        return cls(
            base=float(raw.get("base", 0.0)),  # type: ignore[arg-type]
            bumps=tuple((float(w), float(c), float(s)) for w, c, s in bumps),
            hourly=tuple(float(h) for h in hourly),
        )

    @cached_property
    def minute_pmf(self) -> tuple[float, ...]:
        """Probability that an arrival falls in each of the 1,440 minutes."""
        raw = [self.raw((m + 0.5) / 60.0) for m in range(MINUTES_PER_DAY)]
        total = sum(raw)
        return tuple(r / total for r in raw)

    @cached_property
    def minute_cdf(self) -> tuple[float, ...]:
        """Cumulative share of the day's arrivals at the END of each minute (last = 1)."""
        out: list[float] = []
        acc = 0.0
        for p in self.minute_pmf:
            acc += p
            out.append(acc)
        out[-1] = 1.0
        return tuple(out)

    def cdf(self, t: float) -> float:
        """Share of the day's arrivals expected before hour ``t`` (linear inside a minute)."""
        if t <= 0:
            return 0.0
        if t >= 24:
            return 1.0
        pos = t * 60.0
        m = int(pos)
        before = self.minute_cdf[m - 1] if m > 0 else 0.0
        return before + self.minute_pmf[m] * (pos - m)

    def cdf_at_hours(self) -> tuple[float, ...]:
        """``cdf`` at hours 0, 1, …, 24."""
        return tuple(self.cdf(float(h)) for h in range(25))


DEFAULT_SHAPE = ArrivalShape()


# ------------------------------------------------------------------ in-day shape learning

#: the alternatives to the forecast's shape the engine weighs during the day: the shape moved
#: earlier or later by whole hours (cyclically over the UTC day), and a flat day
SHIFT_HOURS: tuple[int, ...] = tuple(s for s in range(-11, 13) if s != 0)
#: ... and the shape tilted towards the night and morning (negative) or the evening
#: (positive): its intensity times ``exp(tilt · (t − 12) / 12)`` — a day whose buyers come
#: earlier than forecast without the whole day moving (e.g. an Asian peak at night)
TILTS: tuple[float, ...] = (-2.0, -1.5, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0)


def _cyclic_cdf(shape: ArrivalShape, t: float) -> float:
    """Arrivals expected before ``t`` counted from 00:00, ``t`` on the whole real line (a
    day's worth per 24 hours)."""
    days = math.floor(t / 24.0)
    return days + shape.cdf(t - 24.0 * days)


@dataclass(frozen=True)
class ShapeFamily:
    """Candidate daily shapes on ``slots_per_hour`` slots: candidate 0 is the forecast's own
    shape, then :data:`SHIFT_HOURS` shifts of it, then a flat day, then :data:`TILTS` tilts
    of it. ``mass[i][j]`` is candidate
    ``i``'s share of the day's arrivals in slot ``j``, ``cum[i][j]`` its share before slot
    ``j`` (so ``cum[i][-1] = 1``), ``log_mass`` the logarithms (floored) and ``log_prior`` the
    prior log-probabilities (``forecast_prior`` on candidate 0, the rest shared equally)."""

    slots_per_hour: int
    mass: tuple[tuple[float, ...], ...]
    cum: tuple[tuple[float, ...], ...]
    log_mass: tuple[tuple[float, ...], ...]
    log_prior: tuple[float, ...]


@lru_cache(maxsize=16)
def shape_family(
    shape: ArrivalShape,
    forecast_prior: float,
    slots_per_hour: int = 4,
    tilts: tuple[float, ...] = TILTS,
) -> ShapeFamily:
    """The candidates weighed by :func:`cheaptokens.pricing.forecast.shape_posterior`."""
    if not 0.0 < forecast_prior <= 1.0:
        raise ValueError("forecast_prior must be in (0, 1]")
    slots = 24 * slots_per_hour
    masses: list[tuple[float, ...]] = []
    for shift in (0, *SHIFT_HOURS):
        # moved later by `shift` hours: an arrival at t follows the forecast at t − shift
        edges = [
            _cyclic_cdf(shape, j / slots_per_hour - shift) - _cyclic_cdf(shape, -shift)
            for j in range(slots + 1)
        ]
        masses.append(tuple(max(0.0, edges[j + 1] - edges[j]) for j in range(slots)))
    masses.append(tuple(1.0 / slots for _ in range(slots)))
    for tilt in tilts:
        tilted = [
            m * math.exp(tilt * ((j + 0.5) / slots_per_hour - 12.0) / 12.0)
            for j, m in enumerate(masses[0])
        ]
        total = sum(tilted)
        masses.append(tuple(m / total for m in tilted))
    cums = []
    for mass in masses:
        acc, cum = 0.0, [0.0]
        for m in mass:
            acc += m
            cum.append(acc)
        cums.append(tuple(c / acc for c in cum))
    others = len(masses) - 1
    rest = (1.0 - forecast_prior) / others
    log_rest = math.log(rest) if rest > 0 else -math.inf
    log_prior = (math.log(forecast_prior), *(log_rest for _ in range(others)))
    return ShapeFamily(
        slots_per_hour=slots_per_hour,
        mass=tuple(masses),
        cum=tuple(cums),
        log_mass=tuple(tuple(math.log(max(m, 1e-12)) for m in mass) for mass in masses),
        log_prior=log_prior,
    )
