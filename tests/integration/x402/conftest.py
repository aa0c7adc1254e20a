"""A shop with the Venice sandbox (and its x402 facilitator), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from cheaptokens.models import LedgerEntry, Order
from support.agents import required_of, sign
from support.shopkit import Kit, make_kit


@pytest.fixture
def kit(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url) as k:
        yield k


def offer(kit: Kit, credit_cents: int = 500) -> dict[str, Any]:
    """The first call's 402: the payment requirement of a fresh quote."""
    r = kit.web.post("/api/buy", json={"credit_cents": credit_cents})
    assert r.status_code == 402, r.text
    assert r.json()["accepts"] == required_of(r)["accepts"]
    return dict(required_of(r)["accepts"][0])


def pay(kit: Kit, header: str, credit_cents: int = 500) -> Any:
    return kit.web.post(
        "/api/buy", json={"credit_cents": credit_cents}, headers={"PAYMENT-SIGNATURE": header}
    )


def live_keys(kit: Kit) -> int:
    """Keys the shop made for orders that are alive in (sandbox) Venice."""
    return sum(a["activeKeys"] for a in kit.sandbox.accounts_summary()) - len(
        kit.sandbox.accounts_summary()
    )  # each account's ADMIN key


def money_in(kit: Any) -> int:
    """Money the shop took in (payments received), in cents: of a Kit or anything with its
    ``shop``."""
    with kit.shop.db.read() as s:
        return int(
            s.scalar(
                select(func.coalesce(func.sum(LedgerEntry.money_cents), 0)).where(
                    LedgerEntry.kind == "payment_received"
                )
            )
            or 0
        )


def statuses(kit: Kit) -> list[str]:
    with kit.shop.db.read() as s:
        return sorted(s.scalars(select(Order.status)).all())


__all__ = ["live_keys", "money_in", "offer", "pay", "sign", "statuses"]
