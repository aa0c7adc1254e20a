"""Past days' prices for buyers (page and API), and the operator's forecast-vs-actual table."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from cheaptokens.pricing.curve import params_from_json, price_fraction
from support.shopkit import make_kit

T = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)
PASSWORD = "history-test-password"


def two_days(kit: Any) -> None:
    """Day 1: one sale, the rest unsold. Day 2: sold out."""
    kit.worker.upkeep(force=True)
    kit.buy(1000)
    kit.sandbox.clock.advance(24 * 3600)
    kit.worker.upkeep(force=True)
    left = kit.web.get("/api/supply").json()["remaining_cents"]
    while left >= 100:
        kit.buy(min(left, 2000))
        left = kit.web.get("/api/supply").json()["remaining_cents"]
    kit.sandbox.clock.advance(24 * 3600)
    kit.worker.upkeep(force=True)


def test_history_api_shows_curves_sellouts_and_sets(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=T, repricing=True) as kit:
        assert kit.web.get("/api/pricing/history").json() == {"days": []}  # nothing past yet
        two_days(kit)
        body = kit.web.get("/api/pricing/history").json()
        assert [d["day"] for d in body["days"]] == ["2026-11-25", "2026-11-24"]  # newest first
        sold_out, unsold = body["days"]
        assert sold_out["sold_out"] and sold_out["sold_out_at"].startswith("2026-11-25T10:30")
        assert sold_out["unsold_cents"] < 100
        assert not unsold["sold_out"] and unsold["sold_out_at"] is None
        assert unsold["sold_cents"] == 1000
        assert unsold["unsold_cents"] == unsold["capacity_cents"] - 1000
        for day in body["days"]:
            assert len(day["price_cents_per_dollar"]) == 24
            assert day["sets"], "every trading day has published sets"
            for s in day["sets"]:
                assert s["url"] == f"/api/pricing/params/{s['hash']}"
                assert kit.web.get(s["url"]).status_code == 200
        # the hourly price is the published formula at hh:00 (from the set in force then)
        sets = [params_from_json(json.dumps(kit.web.get(s["url"]).json())) for s in unsold["sets"]]
        at = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
        in_force = max(
            (p for p in sets if p.valid_from <= at < p.valid_until), key=lambda p: p.valid_from
        )
        remaining = unsold["capacity_cents"]  # the 10:30 sale came after 10:00
        expected = price_fraction(in_force, now=at, remaining_cents=remaining) * 100
        assert unsold["price_cents_per_dollar"][10] == format(expected.normalize(), "f")
        assert unsold["price_cents_per_dollar"][11] is None  # no set published for 11:00
        # asking for one day gives the newest only
        one = kit.web.get("/api/pricing/history", params={"days": 1}).json()
        assert [d["day"] for d in one["days"]] == ["2026-11-25"]


@pytest.mark.parametrize("days", ["0", "32", "x", "-1", "1e9"])
def test_history_rejects_bad_days_with_the_field(tmp_path: Any, days: str) -> None:
    with make_kit(tmp_path, now=T) as kit:
        r = kit.web.get("/api/pricing/history", params={"days": days})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == "days"


def test_history_page_is_public_and_linked_from_home(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=T, repricing=True) as kit:
        assert 'href="/pricing/history"' in kit.web.get("/").text
        assert "No past days yet" in kit.web.get("/pricing/history").text
        two_days(kit)
        page = kit.web.get("/pricing/history")
        assert page.status_code == 200
        assert "2026-11-24" in page.text and "2026-11-25" in page.text
        assert "Sold out at 10:30 UTC" in page.text
        assert "went unsold" in page.text
        hashes = re.findall(r'href="/api/pricing/params/([0-9a-f]{64})"', page.text)
        assert hashes and all(
            kit.web.get(f"/api/pricing/params/{h}").status_code == 200 for h in hashes
        )
        paths = kit.web.get("/openapi.json").json()["paths"]
        history = paths["/api/pricing/history"]["get"]
        assert {"200", "422"} <= set(history["responses"])
        assert history["parameters"][0]["name"] == "days"


def test_dashboard_shows_forecast_against_actual(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=T, repricing=True, admin_password=PASSWORD) as kit:
        two_days(kit)
        token = re.search(
            r'name="csrf_token" value="([^"]+)"', kit.web.get("/admin/login").text
        ).group(1)  # type: ignore[union-attr]
        kit.web.post(
            "/admin/login",
            data={"csrf_token": token, "username": "admin", "password": PASSWORD},
        )
        page = kit.web.get("/admin").text
        table = page[page.index('id="forecast-table"') :]
        assert "2026-11-25" in table and "2026-11-24" in table
        assert "configured" in table  # day 1 ran on the configured forecast
        assert "v1" in table  # day 2 on the version learned from day 1
