"""Alerts end to end through the JSON API: a webhook registered with the order, its secret
shown once, signed events delivered by the worker, the delivery log behind the order token,
retries, a receiver that hangs while the shop goes on serving, and refusals in live mode."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from cheaptokens.models import OrderWebhook
from support.receiver import receiver
from support.shopkit import Kit, make_kit


@pytest.fixture
def kit(tmp_path: Any) -> Any:
    with make_kit(tmp_path, webhook_timeout_seconds=1.0) as k:
        yield k


def order(kit: Kit, url: str | None, *, credit: int = 500, key: str | None = None) -> Any:
    quote = kit.web.post("/api/quotes", json={"credit_cents": credit})
    body: dict[str, Any] = {"quote_id": quote.json()["quote_id"]}
    if url is not None:
        body["webhook_url"] = url
    headers = {"Idempotency-Key": key} if key else {}
    return kit.web.post("/api/orders", json=body, headers=headers)


def pay_and_provision(kit: Kit, placed: dict[str, Any]) -> None:
    assert kit.web.post(placed["checkout_url"], json={"outcome": "paid"}).status_code == 200
    kit.worker.drain()


def deliveries(kit: Kit, placed: dict[str, Any], token: str | None = None) -> Any:
    return kit.web.get(
        f"/api/orders/{placed['order_id']}/deliveries",
        headers={"Authorization": f"Bearer {token or placed['order_token']}"},
    )


def send(kit: Kit) -> int:
    assert kit.worker.deliveries is not None
    return kit.worker.deliveries.send_due()


def test_key_ready_reaches_the_webhook_signed_and_is_in_the_log(kit: Kit) -> None:
    with receiver() as rec:
        r = order(kit, rec.url)
        assert r.status_code == 201, r.text
        placed = r.json()
        secret = placed["webhook_secret"]
        assert secret.startswith("whsec_") and placed["webhook_url"] == rec.url
        pay_and_provision(kit, placed)
        assert send(kit) == 1
        [got] = rec.wait_for(1)
    event = Webhook(secret).verify(got.body, got.headers)
    status = kit.status(placed)
    assert event["type"] == "key.ready"
    assert event["data"]["order_id"] == placed["order_id"]
    assert event["data"]["key_last6"] == status["key"]["last6"]
    assert status["key"]["api_key"] not in got.body.decode()  # never the key itself
    assert status["webhook_url"] == rec.url and "whsec_" not in str(status)
    log = deliveries(kit, placed).json()
    assert log["webhook_url"] == rec.url and "whsec_" not in str(log)
    [ready] = log["events"]
    assert ready["id"] == got.headers["webhook-id"] and ready["type"] == "key.ready"
    assert ready["status"] == "delivered" and ready["attempts"] == 1
    assert ready["tries"][0]["status_code"] == 204


def test_the_secret_is_stored_sealed(kit: Kit) -> None:
    placed = order(kit, "http://127.0.0.1:9/hook").json()
    secret = placed["webhook_secret"]
    with kit.shop.db.read() as s:
        row = s.scalars(
            select(OrderWebhook).where(OrderWebhook.order_id == placed["order_id"])
        ).one()
        assert secret.encode() not in row.secret and secret[6:].encode() not in row.secret
        assert row.url == "http://127.0.0.1:9/hook"


def test_an_idempotent_replay_does_not_show_the_secret_again(kit: Kit) -> None:
    key = str(uuid.uuid4())
    quote = kit.web.post("/api/quotes", json={"credit_cents": 500}).json()
    body = {"quote_id": quote["quote_id"], "webhook_url": "http://127.0.0.1:9/hook"}
    first = kit.web.post("/api/orders", json=body, headers={"Idempotency-Key": key}).json()
    replay = kit.web.post("/api/orders", json=body, headers={"Idempotency-Key": key})
    assert replay.status_code == 201 and replay.json()["order_id"] == first["order_id"]
    assert first["webhook_secret"] and replay.json()["webhook_secret"] is None
    other = kit.web.post(
        "/api/orders",
        json={**body, "webhook_url": "http://127.0.0.1:10/hook"},
        headers={"Idempotency-Key": key},
    )
    assert other.status_code == 409


def test_a_new_webhook_gets_a_new_secret(kit: Kit) -> None:
    with receiver() as old, receiver() as new:
        placed = order(kit, old.url).json()
        auth = {"Authorization": f"Bearer {placed['order_token']}"}
        r = kit.web.put(
            f"/api/orders/{placed['order_id']}/webhook", json={"url": new.url}, headers=auth
        )
        assert r.status_code == 200, r.text
        secret = r.json()["webhook_secret"]
        assert secret != placed["webhook_secret"]
        pay_and_provision(kit, placed)
        send(kit)
        [got] = new.wait_for(1)
        assert old.received == []
    Webhook(secret).verify(got.body, got.headers)
    wrong = kit.web.put(
        f"/api/orders/{placed['order_id']}/webhook",
        json={"url": new.url},
        headers={"Authorization": "Bearer ot_wrong"},
    )
    assert wrong.status_code == 404


def test_another_orders_deliveries_need_its_token(kit: Kit) -> None:
    with receiver() as rec:
        mine = order(kit, rec.url).json()
        theirs = order(kit, rec.url).json()
    assert deliveries(kit, theirs, token=mine["order_token"]).status_code == 404
    assert kit.web.get(f"/api/orders/{theirs['order_id']}/deliveries").status_code == 404
    assert deliveries(kit, theirs).status_code == 200


def test_a_failing_receiver_is_retried_with_backoff_under_the_same_id(kit: Kit) -> None:
    with receiver("status:500") as rec:
        placed = order(kit, rec.url).json()
        pay_and_provision(kit, placed)
        assert send(kit) == 1
        assert send(kit) == 0  # not before its backoff
        [pending] = deliveries(kit, placed).json()["events"]
        assert pending["status"] == "pending" and pending["next_attempt_at"]
        assert pending["tries"][0]["status_code"] == 500
        kit.sandbox.clock.advance(6)
        rec.mode = "ok"
        assert send(kit) == 1
        first, second = rec.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    [done] = deliveries(kit, placed).json()["events"]
    assert done["status"] == "delivered" and [t["status_code"] for t in done["tries"]] == [500, 204]


def test_a_hanging_receiver_never_slows_the_shop(tmp_path: Any) -> None:
    """Deliveries that hang (here for longer than the whole test) hold up no sale: another
    order is bought, paid and fulfilled while every one of them is still in flight. (The
    cut-off at the deadline is tests/unit/worker/test_deliveries.py's.)"""
    with make_kit(tmp_path, webhook_timeout_seconds=30.0) as kit:
        assert kit.worker.deliveries is not None
        stop = threading.Event()
        runner = threading.Thread(target=kit.worker.deliveries.run, args=(stop,), daemon=True)
        with receiver("hang") as rec:
            runner.start()
            try:
                placed = [order(kit, rec.url).json() for _ in range(3)]
                for p in placed:
                    pay_and_provision(kit, p)
                assert len(rec.wait_for(3, timeout=30)) == 3  # all three are hanging now
                other = order(kit, None).json()
                pay_and_provision(kit, other)
                assert kit.status(other)["status"] == "fulfilled"
                assert kit.web.get("/api/pricing").status_code == 200
                events = [e for p in placed for e in deliveries(kit, p).json()["events"]]
                assert len(events) == 3 and all(not e["tries"] for e in events), events
            finally:
                stop.set()
        runner.join(timeout=30)


def test_the_shop_never_calls_itself(kit: Kit) -> None:
    r = order(kit, "http://testserver/api/orders")
    assert r.status_code == 400 and "this shop" in r.json()["error"]["message"]


def _live_kit(tmp_path: Any) -> Any:
    return make_kit(tmp_path, venice_mode="live")


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://169.254.169.254/latest/meta-data/iam/",
        "https://[::1]/hook",
        "https://10.0.0.8/hook",
        "http://93.184.215.14/hook",
        "https://testserver/api/orders",
    ],
)
def test_live_mode_refuses_private_addresses_and_places_no_order(tmp_path: Any, url: str) -> None:
    with _live_kit(tmp_path) as kit:
        r = order(kit, url)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["field"] == "webhook_url"
        assert kit.web.get("/api/supply").json()["reserved_cents"] == 500  # only the quote


def test_the_openapi_covers_the_new_routes_and_fields(kit: Kit) -> None:
    spec = kit.web.get("/openapi.json").json()
    paths, schemas = spec["paths"], spec["components"]["schemas"]
    assert "put" in paths["/api/orders/{order_id}/webhook"]
    assert "get" in paths["/api/orders/{order_id}/deliveries"]
    assert {"400", "404", "422"} <= set(paths["/api/orders/{order_id}/webhook"]["put"]["responses"])
    assert "webhook_url" in schemas["OrderIn"]["properties"]
    assert {"webhook_url", "webhook_secret"} <= set(schemas["OrderOut"]["properties"])
    assert "webhook_url" in schemas["OrderStatusOut"]["properties"]
    assert {"burn_cents_per_hour", "runs_out_at"} <= set(schemas["UsageOut"]["properties"])
    assert {"id", "type", "status", "tries", "data"} <= set(schemas["DeliveryOut"]["properties"])


def test_events_once_and_delivered_on_both_databases(tmp_path: Any, db_url: str) -> None:
    """``ON CONFLICT DO NOTHING`` on (order_id, once), the claim and the log, on SQLite and
    PostgreSQL."""
    from cheaptokens.orders import events

    with make_kit(tmp_path, database_url=db_url) as kit, receiver() as rec:
        placed = order(kit, rec.url).json()
        pay_and_provision(kit, placed)
        with kit.shop.db.begin() as s:
            first = events.emit(
                s, order_id=placed["order_id"], kind="credit.low", now=kit.now(), once="t:80"
            )
            again = events.emit(
                s, order_id=placed["order_id"], kind="credit.low", now=kit.now(), once="t:80"
            )
        assert first and again is None
        assert send(kit) == 1  # one at a time per order
        assert send(kit) == 1
        rec.wait_for(2)
        log = deliveries(kit, placed).json()["events"]
        assert sorted(e["type"] for e in log) == ["credit.low", "key.ready"]
        assert all(e["status"] == "delivered" for e in log)
