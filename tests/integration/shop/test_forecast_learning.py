"""The nightly refit learns the forecast from the shop's own quotes and sales, stores it as a
version with its data, and the engine uses it unless the operator pins one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cheaptokens.orders import forecasts
from cheaptokens.worker import repricing
from support.shopkit import make_kit

T = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def quotes_lapsing(kit, count: int, credit_cents: int) -> None:
    for _ in range(count):
        r = kit.web.post("/api/quotes", json={"credit_cents": credit_cents})
        assert r.status_code == 201, r.text
    kit.sandbox.clock.advance(120)
    kit.worker.upkeep(force=True)  # they lapse: each one a "no" at its price


def in_force(kit) -> repricing.ForecastInForce:
    return repricing.forecast_in_force(
        kit.shop.db, configured=repricing.forecast_of(kit.shop.settings)
    )


def test_a_fresh_shop_starts_from_the_configured_forecast(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=T, repricing=True) as kit:
        kit.worker.upkeep(force=True)
        found = in_force(kit)
        assert found.version is None and not found.pinned
        assert found.forecast == repricing.forecast_of(kit.shop.settings)
        with kit.shop.db.read() as session:
            assert forecasts.latest(session) is None


def test_nightly_refit_learns_stores_and_applies(tmp_path, db_url):
    with make_kit(
        tmp_path, database_url=db_url, now=T, repricing=True, forecast_arrivals=100
    ) as kit:
        for _ in range(2):  # two days of 12 large requests, all declined, around 09:30
            quotes_lapsing(kit, 12, 600)
            kit.buy(1000)
            kit.sandbox.clock.advance(24 * 3600 - 120)
        kit.worker.upkeep(force=True)  # first upkeep after 00:00: the nightly refit
        found = in_force(kit)
        assert found.version == 2 and not found.pinned  # one a night: day 1, then days 1-2
        learned = found.forecast
        configured = repricing.forecast_of(kit.shop.settings)
        assert learned.n < configured.n  # 13 requests a day, not 100
        assert learned.v < configured.v  # most said no
        assert learned.q_med_cents > configured.q_med_cents  # asked for more than 500¢
        shares = learned.shape.hour_shares()
        assert shares[9] > configured.shape.hour_shares()[9]  # they come at 09:00
        with kit.shop.db.read() as session:
            stored = forecasts.get(session, 2)
            first = forecasts.get(session, 1)
        assert first is not None and [d["quotes"] for d in first.data["days"]] == [13]
        assert stored is not None
        assert stored.window_end == kit.now().date()
        assert [d["quotes"] for d in stored.data["days"]] == [13, 13]
        assert [d["sold_cents"] for d in stored.data["days"]] == [1000, 1000]
        assert stored.data["declined_quotes"] == 24
        # once a night: a second upkeep the same day stores nothing new
        kit.sandbox.clock.advance(3600)
        kit.worker.upkeep(force=True)
        assert in_force(kit).version == 2


def test_pin_keeps_a_version_and_unpin_goes_back_to_the_newest(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=T, repricing=True) as kit:
        quotes_lapsing(kit, 5, 1000)
        kit.sandbox.clock.advance(24 * 3600)
        kit.worker.upkeep(force=True)
        with kit.shop.db.begin() as session:
            assert forecasts.pin(session, 1, now=kit.now())
            assert not forecasts.pin(session, 99, now=kit.now())  # no such version
        quotes_lapsing(kit, 30, 250)
        kit.sandbox.clock.advance(24 * 3600)
        kit.worker.upkeep(force=True)  # version 2 learned, but 1 stays pinned
        found = in_force(kit)
        assert (found.version, found.pinned) == (1, True)
        with kit.shop.db.begin() as session:
            assert forecasts.unpin(session) == 1
        assert in_force(kit).version == 2
        # the operator can also switch learning off: the configured forecast again
        off = repricing.forecast_in_force(
            kit.shop.db, configured=repricing.forecast_of(kit.shop.settings), learning=False
        )
        assert off.version is None


def test_the_refit_window_is_bounded(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=T, repricing=True) as kit:
        quotes_lapsing(kit, 40, 200)  # an old busy day
        kit.sandbox.clock.advance(5 * 24 * 3600)
        quotes_lapsing(kit, 2, 1000)
        kit.sandbox.clock.advance(24 * 3600)
        _learned, data = repricing.refit(
            db=kit.shop.db, forecast=repricing.forecast_of(kit.shop.settings), now=kit.now(), days=3
        )
        assert data["window"] == [
            (kit.now() - timedelta(days=3)).date().isoformat(),
            kit.now().date().isoformat(),
        ]
        assert [d["quotes"] for d in data["days"]] == [0, 0, 2]  # the busy day is outside
        assert data["settled_quotes"] == 2
