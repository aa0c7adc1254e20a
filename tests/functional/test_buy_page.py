"""The buy page (``GET /`` and the no-JavaScript ``POST /buy``): what it says about amounts,
supply and price agrees with itself and with the JSON API."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from support.shopkit import Kit, make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LABEL = re.compile(
    r'How much credit\? \(<span id="min-dollars">(\$[\d,.]+)</span> to '
    r'<span id="max-dollars">(\$[\d,.]+)</span>\)'
)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the form"
    return found.group(1)


def alert_of(html: str) -> str:
    found = re.search(r'id="form-error-server">([^<]*)</p>', html)
    assert found, "no error on the page"
    return found.group(1).replace("&#39;", "'")


def post_amount(kit: Kit, dollars: str) -> Any:
    token = csrf_of(kit.web.get("/").text)
    return kit.web.post("/buy", data={"csrf_token": token, "amount": "custom", "custom": dollars})


def label_of(html: str) -> tuple[str, str]:
    found = LABEL.search(html)
    assert found, "no amount label"
    return found.group(1), found.group(2)


@pytest.mark.parametrize(
    ("diem", "dollars", "status"),
    [
        ("100", "0.50", 400),  # under the minimum order
        ("100", "400", 409),  # more than is left ($89.00 of a 100-DIEM day)
        ("1000", "600", 400),  # more than the maximum order ($500.00)
    ],
)
def test_range_errors_use_the_labels_dollars_and_bounds(
    tmp_path: Any, diem: str, dollars: str, status: int
) -> None:
    with make_kit(tmp_path, now=NOON, diem=Decimal(diem)) as kit:
        low, high = label_of(kit.web.get("/").text)
        r = post_amount(kit, dollars)
        assert r.status_code == status, r.text
        error = alert_of(r.text)
        assert f"from {low} to {high}." in error, error
        assert label_of(r.text) == (low, high)
        assert "cents" not in error and not re.search(r"\d{4}", error), error


def test_range_bounds_are_min_order_and_the_smaller_of_max_order_and_credit_left(
    tmp_path: Any,
) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        assert label_of(kit.web.get("/").text) == ("$1.00", "$89.00")
        kit.buy(3000, pay=False)  # held by an open checkout: no longer left
        assert label_of(kit.web.get("/").text) == ("$1.00", "$59.00")
        error = alert_of(post_amount(kit, "60").text)
        assert error.startswith(
            "Only $59.00 of credit is free right now: enter an amount from $1.00 to $59.00. "
            "The rest is held by open checkouts not paid yet; some may come back by "
        )
    with make_kit(tmp_path / "big", now=NOON, diem=Decimal(1000)) as kit:
        assert label_of(kit.web.get("/").text) == ("$1.00", "$500.00")


def test_sold_out_says_when_credit_returns(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        kit.buy(8900)
        r = post_amount(kit, "5")
        assert r.status_code == 409
        assert alert_of(r.text) == (
            "Today's credit is sold out. New credit comes at 2026-11-26 00:00 UTC; come back then."
        )


def test_api_range_errors_keep_cents_and_say_dollars(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        low = kit.web.post("/api/quotes", json={"credit_cents": 50})
        assert low.status_code == 400
        assert low.json()["error"]["message"] == "credit_cents must be at least 100 ($1.00)"
        high = kit.web.post("/api/quotes", json={"credit_cents": 50_001})
        assert high.json()["error"]["message"] == "credit_cents must be at most 50000 ($500.00)"
        out = kit.web.post("/api/quotes", json={"credit_cents": 9000}).json()["error"]
        assert out["code"] == "sold_out" and out["available_cents"] == 8900
        assert out["message"].startswith("sold out for today: 8900 cents ($89.00) of credit left")


def dollars(html: str, span: str) -> Decimal:
    found = re.search(rf'<span id="{span}">\$([\d,.]+)</span>', html)
    assert found, span
    return Decimal(found.group(1).replace(",", ""))


def note_of(html: str) -> str:
    found = re.search(r'<p class="muted small" id="capacity-note">(.*?)</p>', html, re.S)
    assert found
    return re.sub(r"\s+", " ", found.group(1).replace("&nbsp;", " "))


@pytest.mark.parametrize(
    ("accounts", "settings", "note"),
    [
        (
            1,
            {},
            "Why $89.00: the shop's Venice account gets 100 DIEM ($100.00) of credit a day; "
            "90 % of it is for sale ($90.00), less a $1.00 safety margin.",
        ),
        (
            2,
            {"sell_fraction": Decimal("0.8"), "safety_margin_cents": 250},
            "Why $157.50: the shop's 2 Venice accounts get 200 DIEM ($200.00) of credit a day; "
            "80 % of it is for sale ($160.00), less a $2.50 safety margin.",
        ),
    ],
)
def test_home_shows_held_credit_and_why_capacity_is_what_it_is(
    tmp_path: Any, accounts: int, settings: dict[str, Any], note: str
) -> None:
    with make_kit(tmp_path, now=NOON, accounts=accounts, **settings) as kit:
        kit.buy(1300)  # sold
        kit.buy(1000, pay=False)  # held by an open checkout
        kit.web.post("/api/quotes", json={"credit_cents": 450})  # held by an open quote
        html = kit.web.get("/").text
        supply = kit.web.get("/api/supply").json()
        sold, held, left = dollars(html, "sold"), dollars(html, "held"), dollars(html, "left")
        assert (sold, held) == (Decimal("13.00"), Decimal("14.50"))
        assert sold + held + left == dollars(html, "capacity")
        assert dollars(html, "capacity") * 100 == supply["capacity_cents"]
        assert left * 100 == supply["remaining_cents"] and dollars(html, "remaining") == left
        assert note_of(html).startswith(note), note_of(html)


def test_one_discount_everywhere_the_curves_rate_of_the_moment(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:  # the clock stands still
        kit.buy(1234)
        for credit in (100, 500, 777, 5000):
            pricing = kit.web.get("/api/pricing").json()
            home = kit.web.get("/").text
            shown = re.search(r'<span id="discount">([\d.]+)</span>', home)
            assert shown and shown.group(1) == pricing["discount_percent"]
            # A quote at this moment and unsold credit has the same rate and discount...
            quote = kit.web.post("/api/quotes", json={"credit_cents": credit}).json()
            assert quote["discount_percent"] == pricing["discount_percent"], quote
            assert quote["price_cents_per_dollar"] == pricing["price_cents_per_dollar"]
            # ...and its price is that rate times the credit, rounded down to the cent.
            rate = Decimal(quote["price_cents_per_dollar"])
            assert quote["price_cents"] == int(credit * rate / 100)
