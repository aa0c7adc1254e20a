"""The JSON form of past days' prices (``GET /api/pricing/history`` and its page)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from cheaptokens.orders import history
from cheaptokens.times import iso_z


def _iso(when: datetime | None) -> str | None:
    return None if when is None else iso_z(when)


class PublishedSetOut(BaseModel):
    hash: str = Field(description="The set's SHA-256; its body is at url.")
    url: str
    valid_from: str
    valid_until: str


class HistoryDayOut(BaseModel):
    day: str
    capacity_cents: int
    sold_cents: int
    unsold_cents: int = Field(description="Credit that went unsold (worth nothing at 00:00 UTC).")
    sold_out: bool
    sold_out_at: str | None = Field(description="When sales reached the day's capacity.")
    price_cents_per_dollar: list[str | None] = Field(
        description="Price of $1 of credit at each hh:00 UTC (24 values), from the set in "
        "force and the credit unsold at that moment; null where no set was published."
    )
    sets: list[PublishedSetOut] = Field(description="The parameter sets published that day.")


class PricingHistoryOut(BaseModel):
    days: list[HistoryDayOut] = Field(description="Past days, newest first (today excluded).")


def history_out(days: list[history.HistoryDay]) -> PricingHistoryOut:
    out = []
    for d in days:
        a = d.actual
        out.append(
            HistoryDayOut(
                day=a.day.isoformat(),
                capacity_cents=a.capacity_cents,
                sold_cents=a.sold_cents,
                unsold_cents=a.unsold_cents,
                sold_out=a.sold_out_at is not None,
                sold_out_at=_iso(a.sold_out_at),
                price_cents_per_dollar=[
                    None if f is None else format((f * d.list_cents).normalize(), "f")
                    for f in d.hourly_fraction
                ],
                sets=[
                    PublishedSetOut(
                        hash=s.hash,
                        url=f"/api/pricing/params/{s.hash}",
                        valid_from=iso_z(s.valid_from),
                        valid_until=iso_z(s.valid_until),
                    )
                    for s in d.sets
                ],
            )
        )
    return PricingHistoryOut(days=out)
