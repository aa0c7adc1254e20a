"""Unpaid holds cannot be abused: one client holds at most its share of the day, a hold does
not move the price (only sales do), and a shop held out says when held credit may return."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from starlette.testclient import TestClient

from cheaptokens.web.app import create_app
from support.shopkit import Kit, make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def client(kit: Kit, address: str) -> TestClient:
    return TestClient(kit.web.app, base_url="http://testserver", client=(address, 1))


def test_one_client_cannot_hold_the_whole_day(tmp_path, db_url):
    with make_kit(
        tmp_path, database_url=db_url, now=NOON, max_held_share="0.5", max_order_cents=10_000
    ) as kit:
        attacker = client(kit, "10.0.0.66")
        assert attacker.post("/api/orders", json={"credit_cents": 4450}).status_code == 201
        more = attacker.post("/api/quotes", json={"credit_cents": 100})
        assert more.status_code == 429 and more.json()["error"]["code"] == "hold_limit"
        assert 1 <= int(more.headers["Retry-After"]) <= 301  # the checkout's 5 minutes
        again = attacker.post("/api/orders", json={"credit_cents": 100})
        assert again.status_code == 429
        supply = kit.web.get("/api/supply").json()
        assert supply["reserved_cents"] == 4450 and supply["remaining_cents"] == 4450
        assert (
            client(kit, "10.0.0.7").post("/api/quotes", json={"credit_cents": 4000}).status_code
            == 201
        )
        # Once the attacker's checkout lapses, it may hold again (and nothing stays held).
        kit.sandbox.clock.advance(301)
        kit.worker.upkeep(force=True)
        assert attacker.post("/api/quotes", json={"credit_cents": 100}).status_code == 201


def test_concurrent_quotes_of_one_client_stay_within_its_share(tmp_path, db_url):
    """Issue #11, finding 4 (the hold limit across processes): 24 quotes of $10 sent at once
    by one client, 12 at a time, each through an app of its own on one database. Before the
    client's checks were queued, PostgreSQL let 8 through (90 % of the day held against a
    50 % cap)."""
    with make_kit(
        tmp_path, database_url=db_url, now=NOON, max_held_share="0.5", max_order_cents=10_000
    ) as kit:
        cap = kit.web.get("/api/supply").json()["capacity_cents"] // 2  # 4450

        def quote(_: int) -> tuple[int, str | None]:
            with TestClient(create_app(kit.shop), client=("10.0.0.66", 1)) as web:
                r = web.post("/api/quotes", json={"credit_cents": 1000})
                return r.status_code, (r.json().get("error") or {}).get("code")

        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(quote, range(24)))
        assert sorted(answers, key=str) == [(201, None)] * 4 + [(429, "hold_limit")] * 20
        assert kit.web.get("/api/supply").json()["reserved_cents"] == 4000 <= cap


def test_a_paid_order_frees_the_clients_share(tmp_path):
    with make_kit(tmp_path, now=NOON, max_held_share="0.5", max_order_cents=10_000) as kit:
        buyer = client(kit, "10.0.0.8")
        order = buyer.post("/api/orders", json={"credit_cents": 4450}).json()
        assert buyer.post(order["checkout_url"], json={"outcome": "paid"}).status_code == 200
        # Paid credit is sold, not held: the same buyer may hold again.
        assert buyer.post("/api/orders", json={"credit_cents": 4000}).status_code == 201


def test_unpaid_holds_do_not_move_the_price(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON, max_order_cents=10_000) as kit:
        before = kit.web.get("/api/pricing").json()
        held = kit.web.post("/api/orders", json={"credit_cents": 2600}).json()
        during = kit.web.get("/api/pricing").json()
        assert during["price_fraction"] == before["price_fraction"]
        assert during["remaining_cents"] == before["remaining_cents"]  # x ignores holds
        quote = kit.web.post("/api/quotes", json={"credit_cents": 100}).json()
        assert (
            quote["price_cents"]
            == kit.web.post("/api/quotes", json={"credit_cents": 100}).json()["price_cents"]
        )
        # A sale does move it.
        kit.web.post(held["checkout_url"], json={"outcome": "paid"})
        after = kit.web.get("/api/pricing").json()
        assert after["remaining_cents"] == before["remaining_cents"] - 2600
        assert after["price_fraction"] > before["price_fraction"]


def test_a_shop_held_out_says_when_credit_may_return(tmp_path, db_url):
    with make_kit(
        tmp_path, database_url=db_url, now=NOON, max_held_share="0.5", max_order_cents=10_000
    ) as kit:
        first = client(kit, "10.0.0.1").post("/api/orders", json={"credit_cents": 4450})
        assert first.status_code == 201
        kit.sandbox.clock.advance(60)
        assert (
            client(kit, "10.0.0.2").post("/api/orders", json={"credit_cents": 4450}).status_code
            == 201
        )
        supply = kit.web.get("/api/supply").json()
        assert supply["sold_out"] is False and supply["held_out"] is True
        assert supply["returns_at"] == first.json()["checkout_expires_at"]
        refused = client(kit, "10.0.0.3").post("/api/quotes", json={"credit_cents": 100})
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error["code"] == "held_out" and error["returns_at"] == supply["returns_at"]
        page = kit.web.get("/").text
        assert "held by open quotes and" in page and "12:05 UTC" in page
        assert "sold out" not in page.lower()
        kit.sandbox.clock.advance(250)  # the first checkout lapses
        kit.worker.upkeep(force=True)
        assert (
            client(kit, "10.0.0.3").post("/api/quotes", json={"credit_cents": 100}).status_code
            == 201
        )
