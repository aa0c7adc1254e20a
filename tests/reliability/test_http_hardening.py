"""HTTP hardening: security headers on every kind of response, no caching of order data, and
error pages (404, 405, 413, 422, 500) that say what happened without a stack trace or detail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from cheaptokens.orders import flows
from support.shopkit import Kit, make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
#: What a traceback or an internal error would show. A traceback's line reference is
#: 'File "x.py", line 12'; the 422 of a broken JSON body says "at line 1, column 2" on purpose.
LEAKS = ("Traceback", 'File "', '", line ', "sqlalchemy", "psycopg", ".py", "RuntimeError")


@pytest.fixture
def kit(tmp_path: Any) -> Iterator[Kit]:
    with make_kit(tmp_path, now=NOON) as k:
        yield k


def assert_hardened(r: Any) -> None:
    for name, value in HEADERS.items():
        assert r.headers.get(name) == value, (r.request.url, name, r.headers)
    csp = r.headers.get("content-security-policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, r.request.url
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def test_security_headers_on_pages_api_and_errors(kit):
    order = kit.buy(500, pay=False)
    auth = {"Authorization": f"Bearer {order['order_token']}"}
    responses = [
        kit.web.get("/"),
        kit.web.get("/docs", follow_redirects=True),
        kit.web.get(f"/orders/{order['order_id']}"),
        kit.web.get(order["checkout_url"]),
        kit.web.get("/static/site.css"),
        kit.web.get("/healthz"),
        kit.web.get("/api/pricing"),
        kit.web.get("/api/supply"),
        kit.web.get("/openapi.json"),
        kit.web.get(f"/api/orders/{order['order_id']}", headers=auth),
        kit.web.post("/api/quotes", json={"credit_cents": 500}),
        kit.web.post("/api/quotes", json={"credit_cents": "x"}),  # 422
        kit.web.post("/api/quotes", content=b"x" * 100_000),  # 413
        kit.web.get("/nope"),  # 404
        kit.web.delete("/api/pricing"),  # 405
        kit.web.post("/webhooks/sandbox", content=b"{}"),  # 400
        kit.web.post(order["checkout_url"], data={"outcome": "paid"}, follow_redirects=False),
    ]
    statuses = sorted({r.status_code for r in responses})
    assert statuses == [200, 201, 303, 400, 404, 405, 413, 422], statuses
    for r in responses:
        assert_hardened(r)


def test_order_data_is_never_cached(kit):
    order = kit.buy(500)
    kit.worker.drain()
    auth = {"Authorization": f"Bearer {order['order_token']}"}
    for r in (
        kit.web.get(f"/api/orders/{order['order_id']}", headers=auth),
        kit.web.get(f"/api/orders/{order['order_id']}/usage", headers=auth),
        kit.web.get(f"/api/orders/{order['order_id']}"),  # 404 without the token
        kit.web.get(f"/orders/{order['order_id']}"),
        kit.web.post("/api/orders", json={"credit_cents": 500}),
    ):
        assert r.headers.get("cache-control") == "no-store", (r.request.url, r.headers)


def test_404_405_and_422_say_little(kit):
    for r in (
        kit.web.get("/api/nope"),
        kit.web.get("/nope/../../etc/passwd"),
        kit.web.put("/api/quotes", json={}),
        kit.web.get("/api/orders/ord_x"),
        kit.web.post(
            "/api/quotes", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
    ):
        assert 400 <= r.status_code < 500
        for leak in LEAKS:
            assert leak not in r.text, (r.request.url, leak, r.text)


@pytest.fixture
def crashing(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app with an internal failure whose message holds something secret-looking."""

    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("db at postgresql://shop:hunter2@db/prod VENICE_ADMIN_KEY_fake_boom")

    monkeypatch.setattr(flows, "pricing_now", boom)
    client = TestClient(kit.web.app, base_url="http://testserver", raise_server_exceptions=False)
    with client:
        yield client


def test_500_is_generic_and_hardened(crashing, caplog):
    for path in ("/api/pricing", "/api/supply", "/"):
        r = crashing.get(path)
        assert r.status_code == 500, (path, r.text)
        for leak in (*LEAKS, "hunter2", "VENICE_ADMIN_KEY", "postgresql://"):
            assert leak not in r.text, (path, leak)
        assert_hardened(r)
    api = crashing.get("/api/pricing")
    assert api.json()["error"]["code"] == "internal_error"
    for record in caplog.records:
        assert "hunter2" not in record.getMessage()
        assert "VENICE_ADMIN_KEY_fake_boom" not in record.getMessage()
