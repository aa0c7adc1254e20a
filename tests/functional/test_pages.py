"""The HTML pages through the app: status codes, CSRF, the no-JavaScript buy flow,
the operator's login and refund, and error pages that say what to do next."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx

from cheaptokens.venice.catalogue import ModelCatalogue
from cheaptokens.web.pages import DOCS
from support.shopkit import Kit, make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PASSWORD = "pages-test-password"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the form"
    return found.group(1)


def login(kit: Kit) -> None:
    token = csrf_of(kit.web.get("/admin/login").text)
    r = kit.web.post(
        "/admin/login",
        data={"csrf_token": token, "username": "admin", "password": PASSWORD},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin"


def buy_without_js(kit: Kit, amount: str = "5") -> tuple[str, str]:
    token = csrf_of(kit.web.get("/").text)
    r = kit.web.post("/buy", data={"csrf_token": token, "amount": amount}, follow_redirects=False)
    assert r.status_code == 303, r.text
    checkout = r.headers["location"]
    assert "/checkout/sandbox/" in checkout
    paid = kit.web.post(checkout, data={"outcome": "paid"}, follow_redirects=False)
    order_path = paid.headers["location"].split("?")[0]
    return order_path, order_path.rsplit("/", 1)[1]


def test_home_shows_live_price_chart_and_form(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        r = kit.web.get("/")
        assert r.status_code == 200
        pricing = kit.web.get("/api/pricing").json()
        price = f"{float(pricing['price_cents_per_dollar']):.2f}"
        assert f'<span id="price">{price}</span>' in r.text
        assert '<svg id="curve"' in r.text and 'id="now-dot"' in r.text
        assert 'action="/buy"' in r.text and "ct_csrf" in r.headers["set-cookie"]
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert "<script>" not in r.text and "style=" not in r.text  # CSP: no inline code


def test_buy_form_without_csrf_is_rejected_with_an_explanation(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        kit.web.get("/")  # the browser has a CSRF cookie...
        r = kit.web.post("/buy", data={"amount": "5"}, follow_redirects=False)
        assert r.status_code == 403
        assert "reload the page" in r.text and r.headers["content-type"].startswith("text/html")
        forged = kit.web.post(
            "/buy", data={"amount": "5", "csrf_token": "0" * 64}, follow_redirects=False
        )
        assert forged.status_code == 403
        assert kit.web.get("/api/supply").json()["reserved_cents"] == 0


def test_buy_form_errors_explain_what_to_do(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        token = csrf_of(kit.web.get("/").text)
        bad = kit.web.post("/buy", data={"csrf_token": token, "amount": "custom", "custom": "abc"})
        assert bad.status_code == 400 and "enter an amount in dollars" in bad.text
        cents = kit.web.post(
            "/buy", data={"csrf_token": token, "amount": "custom", "custom": "1.234"}
        )
        assert cents.status_code == 400 and "whole cents" in cents.text
        huge = kit.web.post("/buy", data={"csrf_token": token, "amount": "custom", "custom": "400"})
        assert huge.status_code in (400, 409)
        assert 'role="alert"' in huge.text


def test_no_js_flow_shows_the_key_once_then_only_last6(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        order_path, order_id = buy_without_js(kit)
        kit.worker.drain()
        page = kit.web.get(order_path)
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        key = re.search(r'<code id="api-key">(VENICE_INFERENCE_KEY_\w+)</code>', page.text)
        assert key, "the key is on the page"
        assert key.group(1) in page.text.split('id="samples-title"')[1]  # filled into samples
        # "I saved it" needs the CSRF token too.
        refused = kit.web.post(f"{order_path}/received", data={})
        assert refused.status_code == 403
        saved = kit.web.post(
            f"{order_path}/received", data={"csrf_token": csrf_of(page.text)}, follow_redirects=True
        )
        assert saved.status_code == 200
        assert key.group(1) not in saved.text
        assert f"…{key.group(1)[-6:]}" in saved.text
        # Another browser (no cookie) sees only the shell that asks for the private link.
        kit.web.cookies.clear()
        shell = kit.web.get(order_path)
        assert shell.status_code == 200 and "Open your secret order link" in shell.text
        assert order_id in shell.text and "VENICE_INFERENCE_KEY_your_key_here" in shell.text


def test_docs_pages_and_html_404(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        for slug, title in DOCS:
            r = kit.web.get(f"/docs/{slug}")
            assert r.status_code == 200, slug
            assert f"<h1>{title}</h1>" in r.text
            assert "Beta software" in r.text
        missing = kit.web.get("/docs/nope")
        assert missing.status_code == 404 and "docs index" in missing.text
        assert kit.web.get("/docs", follow_redirects=False).status_code == 308
        errors = kit.web.get("/docs/errors").text
        for status in ("401", "402", "429"):
            assert f"<td>{status}</td>" in errors


def test_models_page_lists_live_models_and_degrades(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        page = kit.web.get("/docs/models").text
        assert "<code>llama-3.3-70b</code>" in page and "<code>claude-sonnet-4-5</code>" in page
        kit.shop.catalogue = ModelCatalogue(httpx.Client(), "http://127.0.0.1:9/api/v1", ttl=0)
        down = kit.web.get("/docs/models")
        assert down.status_code == 200 and "could not be loaded just now" in down.text


def test_dashboard_closed_without_password(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        r = kit.web.get("/admin")
        assert r.status_code == 503 and "CHEAPTOKENS_ADMIN_PASSWORD" in r.text
        assert kit.web.get("/admin/login").status_code == 503


def test_dashboard_requires_login_and_csrf(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON, admin_password=PASSWORD) as kit:
        r = kit.web.get("/admin", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/admin/login"
        token = csrf_of(kit.web.get("/admin/login").text)
        wrong = kit.web.post(
            "/admin/login", data={"csrf_token": token, "username": "admin", "password": "nope"}
        )
        assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
        no_csrf = kit.web.post("/admin/login", data={"username": "admin", "password": PASSWORD})
        assert no_csrf.status_code == 403
        forged = kit.web.cookies.get("ct_admin")
        assert forged is None
        kit.web.cookies.set("ct_admin", "9999999999.deadbeef", path="/admin")
        assert kit.web.get("/admin", follow_redirects=False).status_code == 303
        refund = kit.web.post("/admin/orders/ord_x/refund", data={"csrf_token": token})
        assert refund.status_code == 401


def test_dashboard_shows_the_day_and_refunds_an_order(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON, admin_password=PASSWORD) as kit:
        order = kit.buy(500)
        kit.worker.drain()
        kit.worker.watch_now()  # the key counts are those of the watch's last look
        login(kit)
        page = kit.web.get("/admin")
        assert page.status_code == 200
        assert "sandbox-1" in page.text and f'data-order="{order["order_id"]}"' in page.text
        # Live keys (the buyer's and the account's ADMIN key) against Venice's 500 cap
        # (docs/venice-facts.md §6).
        keys = kit.shop.gateways["sandbox-1"].list_keys()
        assert any(k.description == f"cheaptokens:{order['order_id']}" for k in keys)
        assert f"{len(keys)} / 500" in page.text
        assert '<circle class="sale"' in page.text
        token = csrf_of(page.text)
        no_csrf = kit.web.post(f"/admin/orders/{order['order_id']}/refund", data={})
        assert no_csrf.status_code == 403
        r = kit.web.post(
            f"/admin/orders/{order['order_id']}/refund",
            data={"csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303
        kit.worker.drain()
        assert kit.status(order)["status"] == "refunded"
        again = kit.web.post(
            f"/admin/orders/{order['order_id']}/refund", data={"csrf_token": token}
        )
        assert again.status_code == 400 and "cannot be refunded" in again.text
