"""The whole purchase through the public API, on SQLite, the sandbox and sandbox payments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openai
from starlette.testclient import TestClient

from support.shopkit import make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_buy_five_dollars_and_chat(tmp_path):
    with make_kit(tmp_path, now=NOON) as kit:
        pricing = kit.web.get("/api/pricing").json()
        assert 0 < Decimal(pricing["price_fraction"]) <= 1
        assert pricing["key_expires_at"] == "2026-11-26T00:00:00Z"
        before = kit.web.get("/api/supply").json()

        order = kit.buy(500)
        assert kit.status(order)["status"] == "paid"
        assert kit.worker.drain() == 1
        done = kit.status(order)
        assert done["status"] == "fulfilled", done
        key = done["key"]
        assert key["api_key"].startswith("VENICE_INFERENCE_KEY_")
        assert key["expires_at"] == "2026-11-26T00:00:00Z"

        after = kit.web.get("/api/supply").json()
        assert after["remaining_cents"] == before["remaining_cents"] - 500
        assert after["sold_cents"] == before["sold_cents"] + 500

        # The key's Venice record: DIEM cap 5, USD cap 0, expiring at the next 00:00 UTC.
        venice = kit.shop.gateways["sandbox-1"]
        ours = [k for k in venice.list_keys() if k.description.startswith("cheaptokens:")]
        assert [k.description for k in ours] == [f"cheaptokens:{order['order_id']}"]
        record = venice.get_key(ours[0].id)
        assert record.consumption_limits.diem == Decimal("5")
        assert record.consumption_limits.usd == Decimal("0")
        assert record.expires_at == datetime(2026, 11, 26, tzinfo=UTC)
        assert record.limit_period == "EPOCH"

        # The buyer talks to Venice (here: the sandbox) directly with the official SDK.
        http = TestClient(kit.sandbox.app, base_url="http://sandbox.test")
        client = openai.OpenAI(api_key=key["api_key"], base_url=key["base_url"], http_client=http)
        chat = client.chat.completions.create(
            model="llama-3.3-70b", messages=[{"role": "user", "content": "Say hello"}]
        )
        assert chat.choices[0].message.content
        assert chat.usage is not None and chat.usage.total_tokens > 0


def test_key_shown_until_receipt_then_only_last6(tmp_path):
    with make_kit(tmp_path, now=NOON) as kit:
        order = kit.buy(300)
        kit.worker.drain()
        first = kit.status(order)["key"]
        assert first["api_key"] and first["last6"] == first["api_key"][-6:]
        r = kit.web.post(
            f"/api/orders/{order['order_id']}/received",
            headers={"Authorization": f"Bearer {order['order_token']}"},
        )
        assert r.status_code == 200
        again = kit.status(order)["key"]
        assert again["api_key"] is None and again["last6"] == first["last6"]


def test_wrong_token_is_not_found(tmp_path):
    with make_kit(tmp_path, now=NOON) as kit:
        order = kit.buy(300, pay=False)
        r = kit.web.get(
            f"/api/orders/{order['order_id']}", headers={"Authorization": "Bearer ot_wrong"}
        )
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"


def test_quote_expiry_releases_capacity(tmp_path):
    with make_kit(tmp_path, now=NOON) as kit:
        before = kit.web.get("/api/supply").json()
        q = kit.web.post("/api/quotes", json={"credit_cents": 1000}).json()
        held = kit.web.get("/api/supply").json()
        assert held["reserved_cents"] == before["reserved_cents"] + 1000
        kit.sandbox.clock.advance(61)
        kit.worker.upkeep(force=True)
        freed = kit.web.get("/api/supply").json()
        assert freed["reserved_cents"] == before["reserved_cents"]
        late = kit.web.post("/api/orders", json={"quote_id": q["quote_id"]})
        assert late.status_code == 409
        assert late.json()["error"]["field"] == "quote_id"
        assert kit.now() > NOON + timedelta(seconds=60)
