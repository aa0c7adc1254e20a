"""The hourly re-plan publishes the engine's curve; quotes follow it and stay recomputable."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from cheaptokens.pricing.curve import params_from_json, price_fraction, quote_price_cents
from cheaptokens.worker import repricing
from support.shopkit import make_kit

T = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


def test_each_hour_gets_its_own_published_curve(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=T, repricing=True) as kit:
        default = kit.web.get("/api/pricing").json()
        kit.worker.upkeep(force=True)
        hourly = kit.web.get("/api/pricing").json()
        assert hourly["params_hash"] != default["params_hash"]
        assert hourly["params"]["valid_from"].startswith("2026-11-25T09:00:00")
        assert hourly["next_change_at"] == "2026-11-25T10:00:00Z"
        forecast = repricing.forecast_of(kit.shop.settings)
        again = repricing.replan(
            db=kit.shop.db, rules=kit.shop.rules, forecast=forecast, now=kit.now()
        )
        assert again is None  # once per hour
        kit.sandbox.clock.advance(3600)
        kit.worker.upkeep(force=True)
        later = kit.web.get("/api/pricing").json()
        assert later["params"]["valid_from"].startswith("2026-11-25T10:00:00")

        # Any quote can be recomputed from its published parameters.
        quote = kit.web.post("/api/quotes", json={"credit_cents": 1234}).json()
        body = kit.web.get(f"/api/pricing/params/{quote['params_hash']}").json()
        import json

        params = params_from_json(json.dumps(body))
        when = datetime.fromisoformat(quote["created_at"].replace("Z", "+00:00"))
        assert (
            quote_price_cents(
                params, now=when, remaining_cents=quote["remaining_cents"], credit_cents=1234
            )
            == quote["price_cents"]
        )
        assert (
            params.floor
            <= price_fraction(params, now=when, remaining_cents=quote["remaining_cents"])
            <= 1
        )


def test_declined_quotes_lower_the_next_hours_price(tmp_path):
    def price_after(declines: int) -> Decimal:
        with make_kit(tmp_path / str(declines), now=T, repricing=True) as kit:
            for _ in range(declines):
                q = kit.web.post("/api/quotes", json={"credit_cents": 200})
                assert q.status_code == 201
            kit.sandbox.clock.advance(120)  # the quotes lapse: each one a "no"
            kit.worker.upkeep(force=True)
            kit.sandbox.clock.advance(3600)
            kit.worker.upkeep(force=True)
            return Decimal(kit.web.get("/api/pricing").json()["price_fraction"])

    assert price_after(30) < price_after(0)


def test_nightly_refit_learns_from_yesterdays_quotes(tmp_path):
    with make_kit(tmp_path, now=T, forecast_arrivals=100) as kit:
        for _ in range(20):  # 20 requests, all declined (they lapse)
            assert kit.web.post("/api/quotes", json={"credit_cents": 200}).status_code == 201
        kit.sandbox.clock.advance(120)
        kit.worker.upkeep(force=True)
        kit.sandbox.clock.advance(24 * 3600)
        prior = repricing.forecast_of(kit.shop.settings)
        fitted, data = repricing.refit(db=kit.shop.db, forecast=prior, now=kit.now(), days=1)
        assert data["settled_quotes"] == 20 and data["declined_quotes"] == 20
        assert fitted.n < prior.n  # fewer requests than forecast
        assert fitted.v < prior.v  # everyone said no at these prices
        unchanged, _ = repricing.refit(db=kit.shop.db, forecast=prior, now=T, days=1)
        assert unchanged == prior  # no history: unchanged


def test_the_next_hours_curve_is_published_ahead(tmp_path):
    ahead = datetime(2026, 11, 25, 9, 59, 0, tzinfo=UTC)
    with make_kit(tmp_path, now=ahead, repricing=True) as kit:
        kit.worker.upkeep(force=True)
        kit.sandbox.clock.set(datetime(2026, 11, 25, 10, 0, 1, tzinfo=UTC))
        # No upkeep has run since 10:00, yet the 10:00 set is already in force.
        body = kit.web.get("/api/pricing").json()
        assert body["params"]["valid_from"].startswith("2026-11-25T10:00:00")
        assert body["next_change_at"] == "2026-11-25T11:00:00Z"


def test_sales_far_ahead_of_plan_re_plan_within_the_hour(tmp_path, db_url):
    import json

    with make_kit(tmp_path, database_url=db_url, now=T, repricing=True) as kit:
        kit.worker.upkeep(force=True)
        hourly = kit.web.get("/api/pricing").json()
        assert hourly["params"]["valid_from"].startswith("2026-11-25T09:00:00")
        kit.sandbox.clock.advance(5 * 60)
        kit.worker.upkeep(force=True)  # on plan: no new set
        assert kit.web.get("/api/pricing").json()["params_hash"] == hourly["params_hash"]

        capacity = hourly["params"]["capacity_cents"]
        for _ in range(3):  # a third of the day's credit sold in minutes: far ahead of plan
            kit.buy(capacity // 9)
        kit.sandbox.clock.advance(2 * 60)
        kit.worker.upkeep(force=True)  # drifted, but within 10 minutes of the last plan
        assert kit.web.get("/api/pricing").json()["params_hash"] == hourly["params_hash"]
        kit.sandbox.clock.advance(10 * 60)
        kit.worker.upkeep(force=True)
        now = kit.now()
        replanned = kit.web.get("/api/pricing").json()
        assert replanned["params_hash"] != hourly["params_hash"]
        assert replanned["params"]["valid_from"] == now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert replanned["next_change_at"] == "2026-11-25T10:00:00Z"
        kit.sandbox.clock.advance(60)
        kit.worker.upkeep(force=True)  # rate-limited: one curve at a time, no flicker
        assert kit.web.get("/api/pricing").json()["params_hash"] == replanned["params_hash"]

        # the new set is published under its hash and reproduces the quote
        quote = kit.web.post("/api/quotes", json={"credit_cents": 1000}).json()
        assert quote["params_hash"] == replanned["params_hash"]
        body = kit.web.get(f"/api/pricing/params/{quote['params_hash']}").json()
        params = params_from_json(json.dumps(body))
        when = datetime.fromisoformat(quote["created_at"].replace("Z", "+00:00"))
        assert (
            quote_price_cents(
                params, now=when, remaining_cents=quote["remaining_cents"], credit_cents=1000
            )
            == quote["price_cents"]
        )
