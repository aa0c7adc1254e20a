"""Issue #11, finding 6: the logs hold no capability.

Reproduced before the fix: the access log of ``cheaptokens serve`` recorded every sandbox
checkout URL (whoever has one can pay or decline that order) and any ``?token=`` a buyer put
in a query. Now ``cheaptokens serve`` installs ``cheaptokens.cli.logs.RedactingFilter`` on the
access, error and root loggers and their handlers.

The main test runs a real ``cheaptokens serve`` (the offline default: in-process Venice
sandbox and worker, SQLite) at DEBUG, drives purchases through the API and the no-JavaScript
form, makes the usual mistakes (a token in a query or a path, an API key in a query), logs the
operator in and out and refunds an order, an agent pays with x402 and the operator refunds
it (the x402 refund wallet signs the refund with its key) — then searches the run's whole
output for every secret the run created.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from eth_account import Account

from cheaptokens.cli import logs
from support.agents import agent_client, new_wallet
from support.procs import cheaptokens, free_port, process, wait_http

PASSWORD = "log-redaction-password-01"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the form"
    return found.group(1)


# ------------------------------------------------------------------------- the rules
SHAPES = [
    # (what was logged, the secret in it)
    ('127.0.0.1:1 - "GET /checkout/sandbox/eyJhIjoxfQ.q-_Z9 HTTP/1.1" 200', "eyJhIjoxfQ.q-_Z9"),
    ("GET /api/orders/ord_1?token=ot_" + "a" * 43 + "&x=1", "a" * 43),
    ("GET /orders/ord_1?order_token=s3cr3t-value", "s3cr3t-value"),
    ("GET /checkout/return?order=ord_1&session_id=cs_test_a1B2c3", "cs_test_a1B2c3"),
    ("POST /admin/login csrf_token=abc123&password=hunter2hunter2", "hunter2hunter2"),
    ("Authorization: Bearer some.opaque-token_value", "some.opaque-token_value"),
    ("Authorization: Basic YWRtaW46cGFzc3dvcmQ=", "YWRtaW46cGFzc3dvcmQ="),
    ("created VENICE_INFERENCE_KEY_AbC123_xyz for ord_1", "AbC123_xyz"),
    ("admin key VENICE_ADMIN_KEY_0123456789abcdef", "0123456789abcdef"),
    ("GET /orders/ot_" + "Z" * 43, "Z" * 43),
    ("cookie ct_admin=ctop_" + "Q" * 43, "Q" * 43),
    ("stripe sk_live_51Habcdef and whsec_0a1b2c3d", "51Habcdef"),
    ("stripe rk_test_987zyx", "987zyx"),
    ("webhook_secret whsec_ab+c/d9EF=", "ab+c/d9EF"),
    ("connect redis://:r3dis-pass@127.0.0.1:6379/0", "r3dis-pass"),
    ("db postgresql+psycopg://shop:pg-pass@db/prod", "pg-pass"),
    ('{"order_token": "ot_json_secret_value", "credit_cents": 500}', "ot_json_secret_value"),
    ("PAYMENT-SIGNATURE: eyJ4NDAyVmVyc2lvbiI6Mn0=", "eyJ4NDAyVmVyc2lvbiI6Mn0="),
    ("headers {'payment-signature': 'eyJwYXlsb2FkIjp7fX0='}", "eyJwYXlsb2FkIjp7fX0="),
    ("(b'sign-in-with-x', b'eyJkb21haW4iOiJ4In0=')", "eyJkb21haW4iOiJ4In0="),
    ("X-PAYMENT=eyJsZWdhY3kiOjF9", "eyJsZWdhY3kiOjF9"),
    ('{"signature": "0xdeadbeefcafe", "nonce": "0x01"}', "0xdeadbeefcafe"),
    ("CHEAPTOKENS_X402_REFUND_KEY=0x" + "4f" * 32, "4f" * 32),
    ('{"x402_refund_key": "0x' + "5e" * 32 + '"}', "5e" * 32),
    ("wallet private_key=" + "6d" * 32, "6d" * 32),
]


@pytest.mark.parametrize(("line", "secret"), SHAPES)
def test_every_known_shape_is_redacted(line, secret):
    cleaned = logs.redact(line)
    assert secret not in cleaned and logs.REDACTED in cleaned, cleaned


def test_what_is_not_secret_stays_readable():
    line = '127.0.0.1:1 - "GET /api/orders/ord_0123abcd/usage HTTP/1.1" 200 quote q_1 500 cents'
    assert logs.redact(line) == line


def test_the_filter_keeps_uvicorns_access_record_shape(caplog):
    """uvicorn's access formatter unpacks exactly five arguments: they must stay five."""
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/checkout/sandbox/tok.en?token=ot_" + "x" * 43, "1.1", 303),
        None,
    )
    assert logs.RedactingFilter().filter(record)
    assert len(record.args) == 5 and record.args[4] == 303
    assert record.getMessage() == (
        '127.0.0.1:5000 - "POST /checkout/sandbox/[redacted]?token=[redacted] HTTP/1.1" 303'
    )
    try:
        raise RuntimeError("failed for VENICE_ADMIN_KEY_traceback_secret")
    except RuntimeError:
        import sys

        crash = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    logs.RedactingFilter().filter(crash)
    assert "traceback_secret" not in logging.Formatter().format(crash)


# ------------------------------------------------------------------------ a real server
REFUND_KEY = "0x" + os.urandom(32).hex()


def run_shop(tmp_path: Any) -> tuple[str, dict[str, str], Any]:
    port, sandbox_port = free_port(), free_port()
    env = {
        "CHEAPTOKENS_X402_REFUND_KEY": REFUND_KEY,
        **os.environ,
        "CHEAPTOKENS_DATA_DIR": str(tmp_path),
        "CHEAPTOKENS_PORT": str(port),
        "CHEAPTOKENS_SANDBOX_PORT": str(sandbox_port),
        "CHEAPTOKENS_ADMIN_PASSWORD": PASSWORD,
        "CHEAPTOKENS_POOL_SIZE": "0",
        "CHEAPTOKENS_REPRICING": "false",
    }
    for name in ("CHEAPTOKENS_DATABASE_URL", "DATABASE_URL", "CHEAPTOKENS_VENICE_BASE_URL"):
        env.pop(name, None)
    return f"http://127.0.0.1:{port}", env, tmp_path / "serve.log"


def agent_buy(wallet: Any, base: str) -> dict[str, Any]:
    """The SDK's client buys a key from the running shop, paying with ``wallet``."""

    async def go() -> httpx.Response:
        async with agent_client(wallet, httpx.AsyncHTTPTransport(), base) as client:
            return await client.post("/api/buy", json={"credit_cents": 100})

    r = asyncio.run(go())
    assert r.status_code in (200, 202), r.text
    body: dict[str, Any] = r.json()
    return body


def wait_for(check: Any, what: str, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_real_servers_whole_log_holds_none_of_the_runs_secrets(tmp_path):
    base, env, log = run_shop(tmp_path)
    secrets: dict[str, str] = {
        "admin password": PASSWORD,
        "x402 refund key": REFUND_KEY.removeprefix("0x"),
    }
    command = cheaptokens("serve", "--log-level", "debug")
    with (
        process(command, env=env, log=log) as proc,
        httpx.Client(base_url=base, timeout=30) as http,
    ):
        wait_http(f"{base}/healthz", proc, tries=600)
        wait_for(lambda: http.get("/api/supply").json()["capacity_cents"] > 0, "capacity")

        # 1. The API buyer, with the mistakes buyers make.
        quote = http.post("/api/quotes", json={"credit_cents": 500}).json()
        order = http.post("/api/orders", json={"quote_id": quote["quote_id"]}).json()
        oid, token = order["order_id"], order["order_token"]
        checkout_path = urlsplit(order["checkout_url"]).path
        secrets["order token"] = token
        secrets["checkout token"] = checkout_path.rsplit("/", 1)[1]
        assert http.get(checkout_path).status_code == 200
        assert http.post(checkout_path, data={"outcome": "paid"}).status_code in (200, 303)
        auth = {"Authorization": f"Bearer {token}"}
        status = wait_for(
            lambda: (
                (s := http.get(f"/api/orders/{oid}", headers=auth).json())["status"] == "fulfilled"
                and s
            ),
            "the key",
        )
        api_key = status["key"]["api_key"]
        secrets["api key"] = api_key
        secrets["api key body"] = api_key.removeprefix("VENICE_INFERENCE_KEY_")
        http.get(f"/api/orders/{oid}", params={"token": token})  # token in a query
        http.get(f"/orders/{token}")  # token pasted as the order id
        http.get(f"/api/orders/{oid}/usage", params={"api_key": api_key})
        http.get("/checkout/return", params={"order": oid, "session_id": "cs_test_" + "s" * 24})
        secrets["stripe session"] = "cs_test_" + "s" * 24

        # 2. The no-JavaScript buyer: the order token rides in a cookie, checkout in a redirect.
        home = http.get("/")
        buy = http.post(
            "/buy", data={"csrf_token": csrf_of(home.text), "amount": "1"}, follow_redirects=False
        )
        assert buy.status_code == 303
        form_checkout = urlsplit(buy.headers["location"]).path
        secrets["form checkout token"] = form_checkout.rsplit("/", 1)[1]
        secrets["form order token"] = buy.cookies["ct_order"]
        assert http.post(form_checkout, data={"outcome": "declined"}).status_code in (200, 303)

        # 3. The operator: a wrong password, the right one, a refund, logout.
        login_page = http.get("/admin/login")
        for password in ("wrong-" + PASSWORD, PASSWORD):
            http.post(
                "/admin/login",
                data={
                    "csrf_token": csrf_of(login_page.text),
                    "username": "admin",
                    "password": password,
                },
            )
        cookie = http.cookies.get("ct_admin", path="/admin")
        assert cookie, "the operator did not get in"
        secrets["admin cookie"] = cookie
        board = http.get("/admin")
        assert board.status_code == 200
        http.post(f"/admin/orders/{oid}/refund", data={"csrf_token": csrf_of(board.text)})
        wait_for(
            lambda: http.get(f"/api/orders/{oid}", headers=auth).json()["status"] == "refunded",
            "the refund",
        )

        # 4. An agent pays with x402; the operator refunds it from the refund wallet.
        sandbox = f"http://127.0.0.1:{env['CHEAPTOKENS_SANDBOX_PORT']}/_sandbox/x402/wallets"
        refund_wallet = Account.from_key(REFUND_KEY).address
        agent = new_wallet()
        for address in (refund_wallet, agent.address):
            assert http.post(sandbox, json={"address": address, "usdc": "25.00"}).is_success
        bought = agent_buy(agent, base)
        x402_auth = {"Authorization": f"Bearer {bought['order_token']}"}
        secrets["x402 order token"] = bought["order_token"]
        http.post(
            f"/admin/orders/{bought['order_id']}/refund",
            data={"csrf_token": csrf_of(board.text)},
        )
        wait_for(
            lambda: (
                http.get(f"/api/orders/{bought['order_id']}", headers=x402_auth).json()["status"]
                == "refunded"
            ),
            "the x402 refund",
        )
        assert http.get(f"{sandbox}/{agent.address}").json()["usdc"] == "25.000000"
        http.post("/admin/logout", data={"csrf_token": csrf_of(board.text)})
        http.get("/admin", headers={"Authorization": f"Bearer {cookie}"})

    text = log.read_text(encoding="utf-8", errors="replace")
    # The check proves something only if the log saw the requests.
    assert f"GET /api/orders/{oid}" in text, text[-3000:]
    assert "POST /admin/orders/" in text and "DEBUG" in text
    leaks = [name for name, secret in secrets.items() if secret in text]
    assert not leaks, f"{leaks} in the log of the run"
    assert "/checkout/sandbox/[redacted]" in text and "token=[redacted]" in text
