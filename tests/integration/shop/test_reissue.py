"""A lost key is reissued: the old one is deleted first, the new one holds what was unspent."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cheaptokens.models import Order
from support.shopkit import Kit, chat, make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def reissue(kit: Kit, order: dict[str, Any], token: str | None = None) -> Any:
    return kit.web.post(
        f"/api/orders/{order['order_id']}/reissue",
        headers={"Authorization": f"Bearer {token or order['order_token']}"},
    )


def test_reissue_deletes_the_old_key_first_and_keeps_the_unspent_credit(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order = kit.buy(500)
        kit.worker.drain()
        old = kit.status(order)["key"]["api_key"]
        assert chat(kit, old, tokens=80_000).status_code == 200
        r = reissue(kit, order)
        assert r.status_code == 202 and r.json()["status"] == "replacing"
        assert r.json()["replacement"]["reason"] == "you asked for a new key"
        kit.worker.drain()
        body = kit.status(order)
        new = body["key"]["api_key"]
        assert body["status"] == "fulfilled" and new != old
        spent = body["replacement"]["spent_before_cents"]
        assert 0 < spent < 500 and body["key"]["credit_cents"] == 500 - spent
        assert chat(kit, old).status_code == 401 and chat(kit, new).status_code == 200
        listed = kit.shop.gateways["sandbox-1"].list_keys()
        ours = [k for k in listed if k.description == f"cheaptokens:{order['order_id']}"]
        assert len(ours) == 1 and ours[0].consumption_limits.diem == Decimal(500 - spent) / 100
        # The same account kept the sale: nothing was sold twice, nothing released.
        supply = kit.web.get("/api/supply").json()
        assert supply["sold_cents"] == 500
        # Shown once, like the first key: confirming receipt hides it.
        auth = {"Authorization": f"Bearer {order['order_token']}"}
        kit.web.post(f"/api/orders/{order['order_id']}/received", headers=auth)
        assert kit.status(order)["key"]["api_key"] is None


def test_reissue_is_refused_without_the_token_for_dead_keys_and_past_the_daily_limit(tmp_path):
    with make_kit(tmp_path, now=NOON) as kit:
        unpaid = kit.buy(300, pay=False)
        assert reissue(kit, unpaid).status_code == 400
        order = kit.buy(500)
        kit.worker.drain()
        other = kit.buy(300)
        assert reissue(kit, order, token=other["order_token"]).status_code == 404
        for _ in range(3):
            assert reissue(kit, order).status_code == 202
            assert reissue(kit, order).status_code == 400  # already being replaced
            kit.worker.drain()
        limited = reissue(kit, order)
        assert limited.status_code == 429 and "Retry-After" in limited.headers
        with kit.shop.db.read() as s:
            assert s.get(Order, order["order_id"]).status == "fulfilled"
        assert chat(kit, kit.status(order)["key"]["api_key"]).status_code == 200
