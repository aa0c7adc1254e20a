"""The order page and ``GET /api/orders/{id}`` in each state a buyer can meet: the key shown
once, the key saved, a declined checkout."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from support.shopkit import Kit, make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SAVE_IT_NOW = re.compile(r"save it now|shown only once|not shown again", re.IGNORECASE)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the form"
    return found.group(1)


def checkout_without_js(kit: Kit, amount: str, outcome: str) -> str:
    """The no-JavaScript purchase up to the checkout's button; returns the order page path."""
    token = csrf_of(kit.web.get("/").text)
    r = kit.web.post("/buy", data={"csrf_token": token, "amount": amount}, follow_redirects=False)
    assert r.status_code == 303, r.text
    done = kit.web.post(r.headers["location"], data={"outcome": outcome}, follow_redirects=False)
    assert done.status_code == 303
    location: str = done.headers["location"]
    return location


def auth(order: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {order['order_token']}"}


def test_api_message_says_the_key_was_saved_after_receipt(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        order = kit.buy(300)
        kit.worker.drain()
        before = kit.status(order)
        assert SAVE_IT_NOW.search(before["message"]), before["message"]
        r = kit.web.post(f"/api/orders/{order['order_id']}/received", headers=auth(order))
        assert r.status_code == 200
        for body in (r.json(), kit.status(order)):
            assert body["status"] == "fulfilled" and body["key"]["api_key"] is None
            assert not SAVE_IT_NOW.search(body["message"]), body["message"]
            assert "saved" in body["message"] and "last six characters" in body["message"]


def test_no_js_page_after_receipt_says_saved_and_shows_only_last6(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        order_path = checkout_without_js(kit, "5", "paid").split("?")[0]
        kit.worker.drain()
        page = kit.web.get(order_path)
        key = re.search(r'<code id="api-key">(VENICE_INFERENCE_KEY_\w+)</code>', page.text)
        assert key and SAVE_IT_NOW.search(page.text)
        saved = kit.web.post(
            f"{order_path}/received", data={"csrf_token": csrf_of(page.text)}, follow_redirects=True
        )
        assert saved.status_code == 200
        assert not SAVE_IT_NOW.search(saved.text), SAVE_IT_NOW.search(saved.text)
        message = re.search(r'id="order-message"[^>]*>(.*?)</p>', saved.text, re.S)
        assert message and "You saved your key" in message.group(1)
        assert "does not show it again" in saved.text
        assert f"…{key.group(1)[-6:]}" in saved.text and key.group(1) not in saved.text
