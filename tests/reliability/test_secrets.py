"""Secrets stay secret: not in logs, error pages, URLs or the database; orders need their token.

Every log record of every logger (root at DEBUG, uvicorn's access log on a live server) and
every response body of full purchase flows is collected, then searched for each secret the
shop holds: the buyer's Venice key, the Venice admin key, the Stripe secret key and webhook
secret, the sandbox payment secret, the data key and the order token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import pathlib
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from cheaptokens.config import SANDBOX_ADMIN_KEY
from cheaptokens.web.app import create_app
from cheaptokens.web.csrf import CSRF_FIELD
from reliability.paykit import WHSEC, deliver_stripe, session_id_of, stripe_body
from support.procs import free_port
from support.shopkit import Kit, make_kit, request_refund
from support.stripe_fakes.localstripe import TEST_API_KEY

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Transcript:
    """Everything a flow said: log lines (with tracebacks), and the responses that must hold
    no secret: every error and redirect, and pages fetched without the order's token. (The
    order's own 2xx answers to its token holder carry the token and key by design.)"""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.responses: list[str] = []

    def keep(self, r: Any, *, public: bool = False) -> Any:
        if r.status_code < 300 and not public:
            return r
        headers = "\n".join(f"{k}: {v}" for k, v in r.headers.items() if k.lower() != "set-cookie")
        self.responses.append(f"{r.status_code} {r.url}\n{headers}\n{r.text}")
        return r

    def logs(self) -> str:
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        return "\n".join(formatter.format(rec) for rec in self.caplog.records)

    def assert_clean(self, secrets: dict[str, str | bytes]) -> None:
        logs, pages = self.logs(), "\n".join(self.responses)
        assert self.caplog.records, "no log captured: the check would prove nothing"
        assert len(self.responses) >= 3, "no error response captured"
        for name, secret in secrets.items():
            forms = variants(secret)
            for form in forms:
                assert form not in logs, f"{name} appears in the logs"
                assert form not in pages, f"{name} appears in a response"


def variants(secret: str | bytes) -> list[str]:
    """The secret as text, and for raw bytes its hex and base64 spellings too."""
    if isinstance(secret, bytes):
        return [
            secret.hex(),
            base64.b64encode(secret).decode().rstrip("="),
            base64.urlsafe_b64encode(secret).decode().rstrip("="),
        ]
    return [secret]


@pytest.fixture
def transcript(caplog: pytest.LogCaptureFixture) -> Transcript:
    caplog.set_level(logging.DEBUG)  # the root logger: every library's records
    return Transcript(caplog)


def shop_secrets(kit: Kit, order: dict[str, Any], api_key: str) -> dict[str, str | bytes]:
    return {
        "buyer key": api_key,
        "buyer key body": api_key.removeprefix("VENICE_INFERENCE_KEY_"),
        "admin key": SANDBOX_ADMIN_KEY,
        "order token": order["order_token"],
        "data key": kit.shop.box.mac_key,
    }


def full_sandbox_flow(kit: Kit, t: Transcript) -> tuple[dict[str, Any], str]:
    """Buy, pay, get the key, use it, confirm; plus the errors a buyer can cause."""
    web = kit.web
    t.keep(web.get("/"), public=True)
    t.keep(web.get("/api/pricing"), public=True)
    quote = t.keep(web.post("/api/quotes", json={"credit_cents": 500})).json()
    order = t.keep(web.post("/api/orders", json={"quote_id": quote["quote_id"]})).json()
    t.keep(web.get(order["checkout_url"]), public=True)
    t.keep(web.post(order["checkout_url"], json={"outcome": "paid"}))
    kit.worker.drain()
    auth = {"Authorization": f"Bearer {order['order_token']}"}
    status = t.keep(web.get(f"/api/orders/{order['order_id']}", headers=auth)).json()
    api_key = status["key"]["api_key"]
    assert api_key.startswith("VENICE_INFERENCE_KEY_")
    chat = kit.venice_http.post(
        "/api/v1/chat/completions",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": "llama-3.2-3b", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code in (200, 400, 404), chat.text  # the key is real; the model may vary
    kit.worker.upkeep(force=True)
    t.keep(web.get(f"/api/orders/{order['order_id']}/usage", headers=auth))
    t.keep(web.get(f"/orders/{order['order_id']}"), public=True)  # no token cookie
    # Mistakes and attacks, each answered with an error page or body.
    t.keep(web.get(f"/api/orders/{order['order_id']}", headers={"Authorization": "Bearer ot_x"}))
    t.keep(web.post("/api/orders", json={"quote_id": quote["quote_id"]}))  # used quote
    t.keep(web.post("/api/quotes", json={"credit_cents": 10**9}))
    t.keep(web.post("/webhooks/sandbox", content=b"{}", headers={"X-Sandbox-Signature": "t=1"}))
    t.keep(web.get("/no/such/page"))
    t.keep(web.post(f"/api/orders/{order['order_id']}/received", headers=auth))
    t.keep(web.get(f"/api/orders/{order['order_id']}", headers=auth))
    return order, api_key


def test_sandbox_flow_leaks_no_secret(tmp_path, db_url, transcript):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order, api_key = full_sandbox_flow(kit, transcript)
        transcript.assert_clean(shop_secrets(kit, order, api_key))


def test_stripe_flow_leaks_no_secret(tmp_path, fake_stripe, transcript):
    from cheaptokens.payments.stripe_checkout import StripePayments, make_stripe_client

    client = make_stripe_client(TEST_API_KEY, api_base=fake_stripe.base_url, max_network_retries=0)
    with make_kit(tmp_path, payments=StripePayments(client, WHSEC)) as kit:
        t, web = transcript, kit.web
        order = t.keep(web.post("/api/orders", json={"credit_cents": 500})).json()
        paid = fake_stripe.mark_paid(session_id_of(order))
        body = stripe_body("checkout.session.completed", paid, event_id="evt_secret_flow")
        t.keep(deliver_stripe(kit, body, secret="whsec_wrong_guess"))  # refused, logged?
        t.keep(deliver_stripe(kit, body, signed=False))
        t.keep(web.get(f"/api/orders/{order['order_id']}", headers={"Authorization": "Bearer x"}))
        t.keep(deliver_stripe(kit, body))
        t.keep(
            web.get(
                "/checkout/return",
                params={"order": order["order_id"], "session_id": "cs_nope"},
                follow_redirects=False,
            )
        )
        kit.worker.drain()
        auth = {"Authorization": f"Bearer {order['order_token']}"}
        api_key = t.keep(web.get(f"/api/orders/{order['order_id']}", headers=auth)).json()["key"][
            "api_key"
        ]
        request_refund(kit.shop, order["order_id"], reason="secrets test")
        kit.worker.drain()
        t.keep(web.get(f"/api/orders/{order['order_id']}", headers=auth))
        secrets = shop_secrets(kit, order, api_key)
        secrets |= {"stripe secret key": TEST_API_KEY, "webhook secret": WHSEC}
        t.assert_clean(secrets)
        assert repr(kit.shop.payments) == "StripePayments(currency='usd')"


# ----------------------------------------------------------------------------- live server


@pytest.fixture
def live(tmp_path: Any) -> Iterator[tuple[Kit, str]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with make_kit(tmp_path, now=NOON) as kit:
        config = uvicorn.Config(
            create_app(kit.shop),
            host="127.0.0.1",
            port=port,
            log_config=None,  # records go to the root logger, where caplog listens
            access_log=True,
            lifespan="off",
        )
        # An earlier in-process uvicorn (default log config) may have left its access
        # logger detached from the root logger; re-attach it for this test.
        access_logger = logging.getLogger("uvicorn.access")
        saved = (access_logger.propagate, access_logger.level, access_logger.disabled)
        access_logger.propagate, access_logger.disabled = True, False
        access_logger.setLevel(logging.INFO)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        try:
            yield kit, base
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            access_logger.propagate, _, access_logger.disabled = saved
            access_logger.setLevel(saved[1])


def test_live_server_access_log_leaks_no_secret(live, transcript):
    kit, base = live
    with httpx.Client(base_url=base) as http:
        order = transcript.keep(http.post("/api/orders", json={"credit_cents": 500})).json()
        checkout = base + urlsplit(order["checkout_url"]).path
        transcript.keep(http.post(checkout, data={"outcome": "paid"}))
        kit.worker.drain()
        auth = {"Authorization": f"Bearer {order['order_token']}"}
        body = transcript.keep(http.get(f"/api/orders/{order['order_id']}", headers=auth)).json()
        transcript.keep(http.get(f"/orders/{order['order_id']}"), public=True)
        transcript.keep(http.get("/api/orders/ord_x", headers={"Authorization": "Bearer ot_bad"}))
    access = [r for r in transcript.caplog.records if r.name == "uvicorn.access"]
    assert len(access) >= 5, "uvicorn's access log was not captured"
    assert any(order["order_id"] in r.getMessage() for r in access)
    transcript.assert_clean(shop_secrets(kit, order, body["key"]["api_key"]))


# ----------------------------------------------------------------------------- at rest
def test_keys_are_encrypted_at_rest(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order = kit.buy(500)
        kit.worker.drain()
        api_key = kit.status(order)["key"]["api_key"]
        assert api_key.startswith("VENICE_INFERENCE_KEY_")
        needles = [api_key.encode(), api_key.removeprefix("VENICE_INFERENCE_KEY_").encode()]
        needles += [order["order_token"].encode(), SANDBOX_ADMIN_KEY.encode()]
        if db_url.startswith("sqlite"):
            engine = create_engine(db_url)
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            engine.dispose()
            path = db_url.removeprefix("sqlite:///")
            raw = b"".join(
                pathlib.Path(p).read_bytes() for p in (path, path + "-wal") if _exists(p)
            )
            assert len(raw) > 10_000
            assert order["order_id"].encode() in raw  # the file was read and has the order
        else:
            engine = create_engine(db_url)
            with engine.connect() as conn:
                tables = conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                ).scalars()
                rows: list[str] = []
                for table in list(tables):  # names from the catalogue, not from input
                    query = text(f'SELECT t::text FROM "{table}" t')  # noqa: S608
                    rows.extend(str(row) for row in conn.execute(query).scalars())
                raw = "\n".join(rows).encode()
            engine.dispose()
            assert order["order_id"].encode() in raw
        for needle in needles:
            assert needle not in raw
        assert kit.status(order)["key"]["api_key"] == api_key  # still deliverable


def _exists(path: str) -> bool:
    return pathlib.Path(path).exists()


# ----------------------------------------------------------------------------- access
def test_order_access_needs_its_own_token(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        a, b = kit.buy(500), kit.buy(600)
        kit.worker.drain()
        for path in ("", "/usage"):
            url = f"/api/orders/{a['order_id']}{path}"
            for headers in (
                {},
                {"Authorization": "Bearer "},
                {"Authorization": f"Bearer {b['order_token']}"},  # another order's token
                {"Authorization": f"Bearer {a['order_token']}x"},
                {"Authorization": f"Bearer {a['order_token'][:-1]}"},
                {"Authorization": f"Basic {a['order_token']}"},
            ):
                r = kit.web.get(url, headers=headers)
                assert r.status_code == 404, (url, headers, r.text)
                assert "api_key" not in r.text and "VENICE_INFERENCE_KEY_" not in r.text
        # An unknown order and a wrong token look the same: no hint which it was.
        wrong = kit.web.get(
            f"/api/orders/{a['order_id']}", headers={"Authorization": f"Bearer {b['order_token']}"}
        ).json()
        unknown = kit.web.get(
            "/api/orders/ord_" + "0" * 32, headers={"Authorization": f"Bearer {a['order_token']}"}
        ).json()
        assert wrong == unknown
        r = kit.web.post(
            f"/api/orders/{a['order_id']}/received",
            headers={"Authorization": f"Bearer {b['order_token']}"},
        )
        assert r.status_code == 404
        assert kit.status(a)["key"]["api_key"].startswith("VENICE_INFERENCE_KEY_")


def test_token_check_is_constant_time(tmp_path, monkeypatch):
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(x: Any, y: Any) -> bool:
        calls.append((x, y))
        return real(x, y)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with make_kit(tmp_path, now=NOON) as kit:
        order = kit.buy(500, pay=False)
        calls.clear()
        kit.status(order)
        bad = kit.web.get(
            f"/api/orders/{order['order_id']}", headers={"Authorization": "Bearer ot_wrong"}
        )
        missing = kit.web.get(
            "/api/orders/ord_" + "0" * 32, headers={"Authorization": "Bearer ot_wrong"}
        )
        assert bad.status_code == missing.status_code == 404
    # One comparison per lookup, of SHA-256 digests, even when the order does not exist.
    assert len(calls) == 3
    assert all(len(x) == len(y) == 64 for x, y in calls)
    assert calls[0][0] == hashlib.sha256(order["order_token"].encode()).hexdigest()


# ----------------------------------------------------------------------------- rate limits
def test_quote_and_order_creation_are_rate_limited_per_client(tmp_path):
    with make_kit(tmp_path, now=NOON, quotes_per_minute=3, orders_per_minute=2) as kit:
        for _ in range(3):
            assert kit.web.post("/api/quotes", json={"credit_cents": 100}).status_code == 201
        r = kit.web.post("/api/quotes", json={"credit_cents": 100})
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(r.headers["Retry-After"]) <= 61
        for _ in range(2):
            assert kit.web.post("/api/orders", json={"credit_cents": 100}).status_code == 201
        r = kit.web.post("/api/orders", json={"credit_cents": 100})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        reserved = kit.web.get("/api/supply").json()["reserved_cents"]
        # Another client is not held back by the first one's requests.
        other = TestClient(kit.web.app, base_url="http://testserver", client=("203.0.113.9", 1))
        with other:
            assert other.post("/api/quotes", json={"credit_cents": 100}).status_code == 201
            assert other.post("/api/orders", json={"credit_cents": 100}).status_code == 201
        # The refused requests held no credit: 3 quotes + 2 orders + the other client's 2.
        assert reserved == 500
        assert kit.web.get("/api/supply").json()["reserved_cents"] == 700


# ----------------------------------------------------------------------------- URLs
def test_the_token_only_ever_rides_in_a_fragment(tmp_path, transcript):
    with make_kit(tmp_path, now=NOON) as kit:
        api = kit.web.post("/api/orders", json={"credit_cents": 500}).json()
        token = api["order_token"]
        assert token not in api["checkout_url"]
        url = urlsplit(api["order_url"])
        assert token not in url.path + url.query and url.fragment == f"token={token}"
        # The no-JavaScript form: the redirect to checkout carries no token.
        home = kit.web.get("/")
        csrf = re.search(rf'name="{CSRF_FIELD}" value="([^"]+)"', home.text)
        assert csrf is not None
        r = kit.web.post(
            "/buy", data={"amount": "5", CSRF_FIELD: csrf.group(1)}, follow_redirects=False
        )
        assert r.status_code == 303, r.text
        location = r.headers["location"]
        cookie = r.headers.get("set-cookie", "")
        assert "HttpOnly" in cookie or "httponly" in cookie
        form_token = cookie.split("=", 1)[1].split(";", 1)[0]
        assert form_token.startswith("ot_") and form_token not in location
        paid = kit.web.post(location, data={"outcome": "paid"}, follow_redirects=False)
        assert paid.status_code == 303 and form_token not in paid.headers["location"]
        for entry in transcript.caplog.records:
            assert token not in entry.getMessage() and form_token not in entry.getMessage()


def test_stripe_urls_carry_the_token_only_after_the_hash(tmp_path, fake_stripe):
    from cheaptokens.payments.stripe_checkout import StripePayments, make_stripe_client

    client = make_stripe_client(TEST_API_KEY, api_base=fake_stripe.base_url, max_network_retries=0)
    with make_kit(tmp_path, payments=StripePayments(client, WHSEC)) as kit:
        order = kit.web.post("/api/orders", json={"credit_cents": 500}).json()
        token = order["order_token"]
        session = fake_stripe.sessions[session_id_of(order)]
        success, cancel = urlsplit(session["success_url"]), urlsplit(session["cancel_url"])
        assert token not in success.path + success.query and token in success.fragment
        assert token not in session["cancel_url"] and token not in order["checkout_url"]
        assert token not in str(session.get("metadata")) and cancel.fragment == ""
        # Nothing the shop sent Stripe in a request body or URL other than that fragment.
        sent = [r for r in fake_stripe.requests if r.path.startswith("/v1/checkout/sessions")]
        assert sent
        for request in sent:
            assert token not in request.path
            assert str(request).count(token) <= 1
