"""``/metrics`` follows the shop (a sale moves sales, revenue, stock, liability, jobs and the
Venice and payment counts), is refused without its token when one is set, and ``/readyz``
answers 503 when the worker's heartbeat is stale, the database is unreachable or Venice is
down — with no secret in any answer."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from cheaptokens.config import Settings
from cheaptokens.shop import build_shop
from cheaptokens.web.app import create_app
from cheaptokens.web.health import Check, Readiness, venice_probe
from support.procs import free_port
from support.receiver import receiver
from support.shopkit import SANDBOX_URL, Kit, make_kit

TOKEN = "metrics-token-for-tests-0123456789"


def scrape(kit: Kit, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = kit.web.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def with_sandbox_probe(kit: Kit) -> None:
    """/readyz asks the in-process sandbox (the kit's Venice) instead of the network."""
    kit.web.app.state.readiness = Readiness(  # type: ignore[attr-defined]
        kit.shop, venice=venice_probe(SANDBOX_URL, http=kit.venice_http)
    )


def test_a_sale_moves_the_metrics(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url) as kit:
        before = scrape(kit)
        assert value(before, "cheaptokens_sales_today", kind="order") == 0
        assert value(before, "cheaptokens_stock_capacity_cents", account="sandbox-1") == 8900
        assert value(before, "cheaptokens_price_fraction") > 0
        assert any(name == "cheaptokens_price_params_info" for name, _ in before)

        order = kit.buy(500)
        paid = scrape(kit)
        # Paid, no key yet: sold on the account, the key's job queued, nothing owed in Venice.
        assert value(paid, "cheaptokens_sales_today", kind="order") == 1
        assert value(paid, "cheaptokens_stock_sold_cents", account="sandbox-1") == 500
        assert value(paid, "cheaptokens_jobs_queued", kind="provision") == 1
        assert value(paid, "cheaptokens_stock_liability_cents", account="sandbox-1") == 0
        price = kit.status(order)["price_cents"]
        assert value(paid, "cheaptokens_revenue_cents_today", kind="order") == price
        assert value(paid, "cheaptokens_credit_sold_cents_today", kind="order") == 500
        assert value(paid, "cheaptokens_orders_today", status="paid") == 1
        calls = value(
            paid,
            "cheaptokens_payment_calls_total",
            provider="sandbox",
            action="create_checkout",
            outcome="ok",
        )
        assert calls >= 1

        kit.worker.drain()
        after = scrape(kit)
        assert kit.status(order)["status"] == "fulfilled"
        assert value(after, "cheaptokens_jobs_queued", kind="provision") == 0
        assert value(after, "cheaptokens_orders_today", status="fulfilled") == 1
        # The key is live and unspent: the account owes its whole cap.
        assert value(after, "cheaptokens_stock_liability_cents", account="sandbox-1") == 500
        assert value(after, "cheaptokens_stock_available_cents", account="sandbox-1") == 8400
        created = value(
            after,
            "cheaptokens_venice_requests_total",
            method="POST",
            route="/api_keys",
            outcome="200",
        ) - value(
            before,
            "cheaptokens_venice_requests_total",
            method="POST",
            route="/api_keys",
            outcome="200",
        )
        assert created == 1
        assert (
            value(
                after, "cheaptokens_venice_request_seconds_count", method="POST", route="/api_keys"
            )
            >= 1
        )


def test_metrics_need_the_token_when_one_is_set(tmp_path):
    with make_kit(tmp_path, metrics_token=TOKEN) as kit:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            r = kit.web.get("/metrics", headers=headers)
            assert r.status_code == 401, headers
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert "cheaptokens_" not in r.text and TOKEN not in r.text
        samples = scrape(kit, Authorization=f"Bearer {TOKEN}")
        assert value(samples, "cheaptokens_stock_capacity_cents", account="sandbox-1") == 8900


def test_metrics_port_moves_metrics_off_the_shop(tmp_path):
    with make_kit(tmp_path, metrics_port=free_port()) as kit:
        assert kit.web.get("/metrics").status_code == 404


def test_readyz_follows_the_worker_heartbeat(tmp_path):
    with make_kit(tmp_path, worker_stale_seconds=30) as kit:
        with_sandbox_probe(kit)
        r = kit.web.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["worker"]["ok"] is False
        assert r.headers["cache-control"] == "no-store"

        kit.worker.upkeep(force=True)  # the worker's first heartbeat
        with_sandbox_probe(kit)  # no cached answer
        r = kit.web.get("/readyz")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "ready"
        assert {k: c["ok"] for k, c in body["checks"].items()} == {
            "database": True,
            "migrations": True,
            "worker": True,
            "venice": True,
        }
        assert kit.web.get("/healthz").json() == {"status": "ok"}

        kit.sandbox.clock.advance(31)  # no heartbeat for longer than the limit
        with_sandbox_probe(kit)
        r = kit.web.get("/readyz")
        assert r.status_code == 503
        worker = r.json()["checks"]["worker"]
        assert worker["ok"] is False
        assert re.fullmatch(r"last heartbeat 3\d s ago \(more than 30 s\)", worker["detail"])
        assert 31 <= value(scrape(kit), "cheaptokens_worker_heartbeat_age_seconds") < 40
        assert value(scrape(kit), "cheaptokens_workers_fresh") == 0

        kit.worker.beat()
        with_sandbox_probe(kit)
        assert kit.web.get("/readyz").status_code == 200


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path):
    secret = "pw-never-shown-8d1c"
    url = f"postgresql+psycopg://shop:{secret}@127.0.0.1:{free_port()}/shop"
    shop = build_shop(Settings(database_url=url, data_dir=tmp_path, venice_base_url=SANDBOX_URL))
    app = create_app(shop)
    app.state.readiness = Readiness(shop, venice=lambda: Check(True, "stub"))
    try:
        with TestClient(app) as web:
            r = web.get("/readyz")
    finally:
        shop.close()
    assert r.status_code == 503
    checks = r.json()["checks"]
    assert checks["database"] == {"ok": False, "detail": "unreachable (OperationalError)"}
    assert checks["worker"]["ok"] is False
    assert secret not in r.text and "127.0.0.1" not in r.text


def test_readyz_asks_venice_once_however_often_it_is_probed(tmp_path):
    calls: list[int] = []

    def down() -> Check:
        calls.append(1)
        return Check(False, "unreachable (ConnectError)")

    with make_kit(tmp_path, readyz_venice_seconds=60, accounts=3) as kit:
        kit.worker.beat()
        readiness = Readiness(kit.shop, venice=down)
        readiness.answer.ttl = 0  # every probe checks again; Venice stays cached
        kit.web.app.state.readiness = readiness  # type: ignore[attr-defined]
        answers = [kit.web.get("/readyz") for _ in range(20)]
    assert {r.status_code for r in answers} == {503}
    assert answers[0].json()["checks"]["venice"]["ok"] is False
    assert answers[0].json()["checks"]["database"]["ok"] is True
    assert len(calls) == 1


@pytest.mark.parametrize("path", ["/metrics", "/readyz", "/healthz"])
def test_no_secret_in_the_operations_routes(tmp_path, path):
    with make_kit(tmp_path) as kit:
        kit.buy(300)
        kit.worker.drain()
        text = kit.web.get(path).text
        for secret in (
            kit.shop.settings.account_keys()["sandbox-1"],
            kit.shop.settings.db_url,
            str(tmp_path),
        ):
            assert secret not in text


def test_buyer_webhook_events_and_deliveries_are_counted(tmp_path):
    """A real ``key.ready`` delivered to a receiver: the event counted by status, the attempt
    by outcome."""
    with make_kit(tmp_path) as kit, receiver() as rec:
        before = value(scrape(kit), "cheaptokens_webhook_deliveries_total", outcome="delivered")
        quote = kit.web.post("/api/quotes", json={"credit_cents": 300}).json()
        placed = kit.web.post(
            "/api/orders", json={"quote_id": quote["quote_id"], "webhook_url": rec.url}
        ).json()
        assert kit.web.post(placed["checkout_url"], json={"outcome": "paid"}).status_code == 200
        kit.worker.drain()
        assert value(scrape(kit), "cheaptokens_webhook_events", status="pending") == 1
        assert kit.worker.deliveries is not None
        assert kit.worker.deliveries.send_due() == 1
        rec.wait_for(1)
        found = scrape(kit)
    assert value(found, "cheaptokens_webhook_events", status="delivered") == 1
    assert value(found, "cheaptokens_webhook_events", status="pending") == 0
    assert value(found, "cheaptokens_webhook_deliveries_total", outcome="delivered") == before + 1
