"""Issue #11, finding 5: what must not be cached is not, and https means https.

Reproduced before the fix: /admin (orders, revenue) and the sandbox checkout pages (whoever
holds one can pay or decline the order) came without ``Cache-Control: no-store``, and no page
carried ``Strict-Transport-Security`` when the public URL was https. The headers now come from
a pure ASGI middleware (``web.app.SecurityHeaders``), and 500s carry them too.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.testclient import TestClient

from cheaptokens.orders import flows
from cheaptokens.web.app import HSTS, NO_STORE_PREFIXES, SecurityHeaders, create_app
from support.shopkit import Kit, make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PASSWORD = "cache-test-password-0001"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the form"
    return found.group(1)


@pytest.fixture
def kit(tmp_path: Any) -> Iterator[Kit]:
    with make_kit(tmp_path, now=NOON, admin_password=PASSWORD) as k:
        yield k


def sensitive_responses(web: TestClient, kit: Kit) -> list[Any]:
    """Every kind of answer about the dashboard and the sandbox checkout."""
    order = kit.buy(500, pay=False)
    checkout = order["checkout_url"]
    login_page = web.get("/admin/login")
    token = csrf_of(login_page.text)
    wrong = web.post(
        "/admin/login", data={"csrf_token": token, "username": "admin", "password": "no"}
    )
    ok = web.post(
        "/admin/login",
        data={"csrf_token": token, "username": "admin", "password": PASSWORD},
        follow_redirects=False,
    )
    dashboard = web.get("/admin")
    home_token = csrf_of(web.get("/").text)
    with TestClient(web.app, base_url=str(web.base_url)) as stranger:
        anonymous = stranger.get("/admin", follow_redirects=False)  # → the login page
    return [
        login_page,
        wrong,
        ok,
        dashboard,
        anonymous,
        web.post("/admin/orders/ord_x/refund", data={"csrf_token": csrf_of(dashboard.text)}),
        web.get(checkout),
        web.get(checkout.rsplit("/", 1)[0] + "/not-a-token"),
        web.post(checkout, data={"outcome": "declined"}, follow_redirects=False),
        web.post("/buy", data={"csrf_token": home_token, "amount": "5"}, follow_redirects=False),
        web.get(
            "/checkout/return",
            params={"order": "ord_x", "session_id": "cs_x"},
            follow_redirects=False,
        ),
    ]


def test_dashboard_and_checkout_answers_are_never_stored(kit):
    responses = sensitive_responses(kit.web, kit)
    assert sorted({r.status_code for r in responses}) == [200, 303, 401, 404], [
        (r.request.url, r.status_code) for r in responses
    ]
    for r in responses:
        assert r.headers.get("cache-control") == "no-store", (r.request.url, r.status_code)
        assert r.headers.get("x-frame-options") == "DENY"
    # Public, shared answers keep their own caching.
    assert "no-store" not in kit.web.get("/static/site.css").headers.get("cache-control", "")
    assert kit.web.get("/favicon.ico").headers["cache-control"] == "max-age=86400"


SECRET_FIELD = re.compile(r"api_key|token|secret")


def secret_fields(model: Any, seen: frozenset[Any] = frozenset()) -> list[str]:
    """The fields of a response model (and of the models inside it) that hold a key, a
    token or a secret."""
    if isinstance(model, types.UnionType) or typing.get_origin(model) is not None:
        return [f for arg in typing.get_args(model) for f in secret_fields(arg, seen)]
    if not (isinstance(model, type) and issubclass(model, BaseModel)) or model in seen:
        return []
    found = []
    for name, field in model.model_fields.items():
        if SECRET_FIELD.search(name):
            found.append(f"{model.__name__}.{name}")
        found += secret_fields(field.annotation, seen | {model})
    return found


def test_every_answer_that_can_hold_a_key_or_token_is_never_stored(kit):
    """Found before in the issue's spirit: an x402 purchase (key, order token, webhook
    secret), a wallet's orders (keys) and standing orders (tokens) were answered without
    ``no-store``. Every API route whose response model has such a field must be covered."""
    from fastapi.routing import iter_route_contexts  # included routers stay nested

    holding = {
        str(c.path): secret_fields(getattr(c.original_route, "response_model", None))
        for c in iter_route_contexts(kit.web.app.routes)
    }
    holding = {path: fields for path, fields in holding.items() if fields}
    assert "/api/buy" in holding and "/api/orders/{order_id}" in holding  # the walk works
    uncovered = {p: f for p, f in holding.items() if not p.startswith(NO_STORE_PREFIXES)}
    assert not uncovered, uncovered
    # And the header is really sent on those paths, refusals included.
    answers = [
        kit.web.post("/api/buy", json={"credit_cents": 500}),  # 402: pay first
        kit.web.get("/api/wallet/orders"),  # 402: sign in first
        kit.web.get("/api/wallet/orders/ord_x"),
        kit.web.get("/api/wallet/standing-orders"),
        kit.web.post("/api/standing-orders", json={}),
        kit.web.get("/api/standing-orders/so_x"),
    ]
    for r in answers:
        assert r.headers.get("cache-control") == "no-store", (r.request.url, r.status_code)
    assert "no-store" not in kit.web.get("/api/pricing").headers.get("cache-control", "")


def https_app(kit: Kit, **kwargs: Any) -> TestClient:
    kit.shop.settings.public_url = "https://shop.example"
    return TestClient(create_app(kit.shop), base_url="https://shop.example", **kwargs)


def test_https_shop_sends_hsts_on_every_answer(kit, monkeypatch):
    with https_app(kit) as web:
        responses = [
            web.get("/"),
            web.get("/static/site.css"),
            web.get("/api/pricing"),
            web.get("/nope"),
            web.post("/api/quotes", content=b"x" * 100_000),  # 413
            *sensitive_responses(web, kit),
        ]
        for r in responses:
            assert r.headers.get("strict-transport-security") == HSTS, (r.request.url, r.headers)

    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("crash")

    monkeypatch.setattr(flows, "pricing_now", boom)
    with https_app(kit, raise_server_exceptions=False) as web:
        for path in ("/api/pricing", "/"):
            crashed = web.get(path)
            assert crashed.status_code == 500
            assert crashed.headers.get("strict-transport-security") == HSTS
            assert crashed.headers.get("cache-control") == "no-store"


def test_plain_http_shop_sends_no_hsts(kit):
    for r in (kit.web.get("/"), kit.web.get("/api/pricing"), kit.web.get("/admin/login")):
        assert "strict-transport-security" not in r.headers


def test_the_headers_come_from_a_pure_asgi_middleware(kit):
    classes = [m.cls for m in kit.web.app.user_middleware]
    assert SecurityHeaders in classes
    assert not any(isinstance(c, type) and issubclass(c, BaseHTTPMiddleware) for c in classes)
