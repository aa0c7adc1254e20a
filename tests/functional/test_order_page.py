"""The order page and ``GET /api/orders/{id}`` in each state a buyer can meet: the key shown
once, the key saved, a declined checkout."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

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


def test_declined_checkout_offers_the_same_amount_again_and_no_key_samples(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        location = checkout_without_js(kit, "10", "declined")
        assert location.endswith("?checkout=failed")  # the sandbox event's kind
        page = kit.web.get(location)
        assert page.status_code == 200
        assert "The payment was declined" in page.text and "Nothing was charged" in page.text
        again = re.search(
            r'<a class="button primary" id="try-again-link"\s+href="([^"]+)">([^<]+)</a>', page.text
        )
        assert again and again.groups() == ("/?amount=10.00", "Try again with $10.00 of credit")
        assert "Use your key" not in page.text and "data-sample=" not in page.text
        home = kit.web.get(again.group(1)).text
        assert re.search(r'<input type="radio" name="amount" value="10" checked>', home)
        assert not re.search(r'value="5" checked', home)


@pytest.mark.parametrize(
    ("amount", "checked", "custom"),
    [("5.00", "5", ""), ("25", "25", ""), ("12.5", "custom", "12.50"), ("nope", "5", "")],
)
def test_home_preselects_the_amount_to_try_again(
    tmp_path: Any, amount: str, checked: str, custom: str
) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        home = kit.web.get("/", params={"amount": amount}).text
        ticked = re.findall(r'name="amount" value="(\w+)"[^>]*\schecked>', home)
        assert ticked == [checked]
        assert f'value="{custom}">' in home.split('id="custom"')[1].split("\n")[1]


def test_samples_only_for_an_order_with_a_key(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        order_path = checkout_without_js(kit, "5", "paid").split("?")[0]
        assert 'id="samples"' not in kit.web.get(order_path).text  # paid, no key yet
        kit.worker.drain()
        page = kit.web.get(order_path).text
        assert '<section aria-labelledby="samples-title" class="samples" id="samples" >' in page
        kit.web.cookies.clear()  # the JavaScript page: hidden until the API says fulfilled
        shell = kit.web.get(order_path).text
        assert 'class="samples" id="samples" hidden>' in shell


def test_sandbox_checkout_says_what_the_payment_buys(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        order = kit.buy(500, pay=False)
        page = kit.web.get(order["checkout_url"])
        assert page.status_code == 200
        summary = re.search(r'<p class="lead" id="checkout-summary">(.*?)</p>', page.text)
        assert summary, page.text
        text = re.sub(r"<[^>]+>", "", summary.group(1))
        price = f"${order['price_cents'] // 100}.{order['price_cents'] % 100:02d}"
        assert text == f"Pay {price} for $5.00 of Venice.ai credit, valid until 00:00 UTC."
        assert "open until 12:05 UTC" in page.text  # the 5-minute checkout window


def test_the_key_says_its_cap_in_cents(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        order = kit.buy(725)
        kit.worker.drain()
        key = kit.status(order)["key"]
        assert key["credit_cents"] == 725 and key["api_key"]
        venice = kit.shop.gateways["sandbox-1"]
        record = next(k for k in venice.list_keys() if k.last6 == key["last6"])
        cap = venice.get_key(record.id).consumption_limits.diem
        assert cap is not None and cap * 100 == key["credit_cents"]  # what Venice enforces
        received = kit.web.post(f"/api/orders/{order['order_id']}/received", headers=auth(order))
        assert received.json()["key"]["credit_cents"] == 725
        schema = kit.web.get("/openapi.json").json()["components"]["schemas"]["KeyOut"]
        assert "credit_cents" in schema["required"]
        assert kit.web.get("/docs/api").text.count("<code>credit_cents</code>") == 1


def test_no_js_top_up_and_reissue_from_the_key_page(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        order_path = checkout_without_js(kit, "5", "paid").split("?")[0]
        kit.worker.drain()
        page = kit.web.get(order_path)
        assert "Top up this key" in page.text and "stops working at once" in page.text
        token = csrf_of(page.text)
        refused = kit.web.post(
            f"{order_path}/topup", data={"csrf_token": "x", "amount": "3"}, follow_redirects=False
        )
        assert refused.status_code == 403
        r = kit.web.post(
            f"{order_path}/topup", data={"csrf_token": token, "amount": "3"}, follow_redirects=False
        )
        assert r.status_code == 303 and "/checkout/sandbox/" in r.headers["location"]
        paid = kit.web.post(r.headers["location"], data={"outcome": "paid"}, follow_redirects=False)
        assert paid.headers["location"].startswith(order_path)  # back to the order, not the top-up
        kit.worker.drain()
        page = kit.web.get(order_path)
        assert "$3.00 for" in page.text and "applied" in page.text
        old = re.search(r'<code id="api-key">(VENICE_INFERENCE_KEY_\w+)</code>', page.text)
        assert old
        again = kit.web.post(
            f"{order_path}/reissue", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False
        )
        assert again.status_code == 303
        kit.worker.drain()
        page = kit.web.get(order_path)
        new = re.search(r'<code id="api-key">(VENICE_INFERENCE_KEY_\w+)</code>', page.text)
        assert new and new.group(1) != old.group(1)
        assert "Why your key changed: you asked for a new key" in page.text
