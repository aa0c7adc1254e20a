"""The Alerts docs' samples run against a live shop over real HTTP: each receiver (Python with
standardwebhooks, Node with node:crypto, Node with the standardwebhooks npm package) is started
as the buyer would, gets the shop's signed ``key.ready`` when the order is paid, refuses a
forged or stale (replayed) request and handles a retried event once; the cURL lines register a
webhook, read the delivery log and set a new webhook."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from cheaptokens.orders.events import new_secret
from cheaptokens.web.pages import sample
from support.live import Live, live_shop
from support.procs import free_port

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NODE_DIR = pathlib.Path(__file__).resolve().parents[1] / "node"


def _fill(name: str, live: Live, key: str, **extra: str) -> str:
    text = sample(name, api_key=key, base_url=live.venice_url, shop_url=live.url)
    for placeholder, value in extra.items():
        text = text.replace(placeholder, value)
    return text


def _json_values(text: str) -> list[Any]:
    decoder, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        value, i = decoder.raw_decode(text, i)
        out.append(value)
    return out


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


HAS_NODE = shutil.which("node") is not None and (NODE_DIR / "node_modules").exists()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_shop(tmp_path_factory.mktemp("alerts"), now=NOON) as shop:
        yield shop


def order_with_webhook(live: Live, url: str) -> dict[str, Any]:
    with httpx.Client(base_url=live.url, timeout=10) as http:
        r = http.post(
            "/api/orders",
            json={"credit_cents": 300, "webhook_url": url},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body


def pay(live: Live, placed: dict[str, Any]) -> None:
    with httpx.Client(timeout=10) as http:
        assert http.post(placed["checkout_url"], json={"outcome": "paid"}).status_code == 200


def wait_listening(port: int, proc: subprocess.Popen[str], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the receiver exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the receiver did not listen")


@contextmanager
def running(args: list[str], *, secret: str, port: int, out: pathlib.Path) -> Iterator[Any]:
    env = {**os.environ, "CHEAPTOKENS_WEBHOOK_SECRET": secret, "PORT": str(port)}
    with out.open("w") as fh:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env, text=True)
        try:
            wait_listening(port, proc)
            yield proc
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def wait_for_line(out: pathlib.Path, text: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = out.read_text()
        if text in got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not printed; got {out.read_text()!r}")


def signed(secret: str, body: str, *, msg_id: str, at: datetime) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
    }


def check_receiver(live: Live, tmp_path: pathlib.Path, args: list[str]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    placed = order_with_webhook(live, url)
    secret = placed["webhook_secret"]
    out = tmp_path / "receiver.out"
    with running(args, secret=secret, port=port, out=out):
        pay(live, placed)
        wait_for_line(out, f"key.ready {placed['order_id']}")
        # A retried event (same webhook-id) is acknowledged and handled once.
        body = json.dumps(
            {"type": "key.expiring", "timestamp": "x", "data": {"order_id": "ord_retry"}}
        )
        now = datetime.now(UTC)
        with httpx.Client(timeout=5) as http:
            for _ in range(2):
                r = http.post(
                    url, content=body, headers=signed(secret, body, msg_id="msg_r", at=now)
                )
                assert r.status_code == 204
            # A replayed (stale) request, a forged one and another shop's are refused.
            stale = signed(secret, body, msg_id="msg_s", at=now - timedelta(minutes=10))
            assert http.post(url, content=body, headers=stale).status_code == 400
            forged = signed(secret, body, msg_id="msg_f", at=now)
            assert http.post(url, content=body + " ", headers=forged).status_code == 400
            other = signed(new_secret(), body, msg_id="msg_o", at=now)
            assert http.post(url, content=body, headers=other).status_code == 400
        text = wait_for_line(out, "key.expiring ord_retry")
        time.sleep(0.3)
        text = out.read_text()
    assert text.count("ord_retry") == 1, text
    log = httpx.get(
        f"{live.url}/api/orders/{placed['order_id']}/deliveries",
        headers={"Authorization": f"Bearer {placed['order_token']}"},
    ).json()
    [ready] = [e for e in log["events"] if e["type"] == "key.ready"]
    assert ready["status"] == "delivered" and ready["tries"][-1]["status_code"] == 204


def test_python_receiver(live: Live, tmp_path: pathlib.Path) -> None:
    code = tmp_path / "receiver.py"
    code.write_text(_fill("python_webhook.py", live, ""))
    check_receiver(live, tmp_path, [sys.executable, str(code)])


@pytest.mark.skipif(not HAS_NODE, reason="node or the npm packages are not installed (make node)")
@pytest.mark.parametrize("name", ["node_webhook.mjs", "node_webhook_lib.mjs"])
def test_node_receivers(live: Live, tmp_path: pathlib.Path, name: str) -> None:
    if name == "node_webhook_lib.mjs" and not (NODE_DIR / "node_modules/standardwebhooks").exists():
        pytest.skip("the standardwebhooks npm package is not installed (make node)")
    path = NODE_DIR / f"run-{uuid.uuid4().hex[:8]}-{name}"  # packages resolve from tests/node
    path.write_text(_fill(name, live, ""))
    try:
        check_receiver(live, tmp_path, ["node", str(path)])
    finally:
        path.unlink()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_webhook_lines(live: Live) -> None:
    first = order_with_webhook(live, "http://127.0.0.1:9/first")
    script = _fill(
        "curl_webhook.sh",
        live,
        "",
        __WEBHOOK_URL__="http://127.0.0.1:9/hook",
        __ORDER_ID__=first["order_id"],
        __ORDER_TOKEN__=first["order_token"],
    )
    done = _run(["bash", "-e", "-c", script])
    assert done.returncode == 0, done.stderr
    made, log, renewed = _json_values(done.stdout)
    assert made["webhook_secret"].startswith("whsec_") and made["status"] == "awaiting_payment"
    assert made["webhook_url"] == "http://127.0.0.1:9/hook"
    assert log["order_id"] == first["order_id"] and log["webhook_url"] == "http://127.0.0.1:9/first"
    assert renewed["webhook_secret"] not in (first["webhook_secret"], made["webhook_secret"])
