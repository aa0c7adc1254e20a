"""Money and credit as integer cents.

Venice reports credit in dollars with up to four decimals (DIEM = $1). The shop
holds every amount as an ``int`` number of cents and converts only at its edges.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, Decimal

CENT = Decimal("0.01")


def cents_to_dollars(cents: int) -> Decimal:
    """``550 -> Decimal('5.50')``: what Venice expects in a ``consumptionLimit``."""
    return (Decimal(cents) / 100).quantize(CENT)


def dollars_to_cents(amount: Decimal) -> int:
    """Whole cents of a dollar amount, rounded down (never count credit we do not have)."""
    return int((amount * 100).to_integral_value(rounding=ROUND_DOWN))


def dollars_to_cents_up(amount: Decimal) -> int:
    """Whole cents, rounded up: for credit *used*, so what is left is never overstated."""
    return int((amount * 100).to_integral_value(rounding=ROUND_CEILING))


def format_usd(cents: int) -> str:
    """``1234 -> '$12.34'``, for pages and messages."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"
