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
from functools import cached_property

MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class ArrivalShape:
    """``base`` plus ``bumps`` given as ``(weight, centre_hour, width_hours)``."""

    base: float = 0.25
    bumps: tuple[tuple[float, float, float], ...] = (
        (0.5, 3.0, 2.5),
        (1.0, 11.0, 3.0),
        (1.4, 18.5, 3.0),
    )

    def __post_init__(self) -> None:
        if self.base < 0 or any(w < 0 or s <= 0 for w, _, s in self.bumps):
            raise ValueError("shape weights must be >= 0 and widths > 0")
        if self.base == 0 and not any(w > 0 for w, _, _ in self.bumps):
            raise ValueError("shape must have some mass")

    def raw(self, t: float) -> float:
        """Unnormalised arrival intensity at hour ``t``."""
        return self.base + sum(w * math.exp(-0.5 * ((t - c) / s) ** 2) for w, c, s in self.bumps)

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
