"""Simulated buyers' answers to quotes, for the willingness estimators' tests."""

from __future__ import annotations

import random


def answers(log_v: float, count: int, rnd: random.Random) -> list[tuple[float, bool]]:
    """``count`` quotes around the level ``log_v`` (as ``ln price − ln g(h)``) and whether a
    buyer of that level (log-sd 0.5) took each."""
    obs = []
    for _ in range(count):
        y = log_v + rnd.uniform(-0.6, 0.6)
        obs.append((y, log_v + 0.5 * rnd.gauss(0, 1) >= y))
    return obs
