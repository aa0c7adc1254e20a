"""The production layout of docs/operations.md, brought up on this machine by deploy/up.sh and
torn down by deploy/down.sh: PostgreSQL, Redis, the Venice sandbox, two ``cheaptokens serve
--no-worker`` and a ``cheaptokens worker`` run from the systemd units of deploy/systemd/, nginx
in front with the site of deploy/nginx.conf.

Through nginx a buyer (from 127.0.0.2, forging X-Forwarded-For) buys and uses the key with the
openai SDK; the shop records the address nginx forwarded, not the forged one. ``/metrics``
refuses a scrape without the token and, with it, adds up what every process did (the key was
made by the worker process, the orders taken by the web processes). A pg_dump of the shop's
database restored into a new database serves the same order. Stopping the worker turns
``/readyz`` to 503 within the stale limit.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import signal
import subprocess
import time
import uuid
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from support.databases import PG_ADMIN_URL
from support.procs import cheaptokens, free_port, process, wait_http

ROOT = pathlib.Path(__file__).resolve().parents[2]
PG_ADMIN = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")  # psql reads it too
STALE_SECONDS = 15
FORGED = "203.0.113.50"
BUYER = "127.0.0.2"  # the buyer's own address: nginx forwards it, the shop must see it

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def nginx_present() -> bool:
    return bool(shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"))


def read_env(path: pathlib.Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            pairs[key] = value.strip().strip("'\"")
    return pairs


def bash(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", *args],
        cwd=ROOT,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def logs_of(directory: pathlib.Path) -> str:
    return "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
        for p in sorted((directory / "log").glob("*.log"))
    )


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def buy_from(shop: str, address: str) -> dict[str, Any]:
    """Quote, order (forging X-Forwarded-For), pay on the sandbox checkout, wait for the key."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=shop, transport=transport, timeout=30) as http:
        quote = http.post("/api/quotes", json={"credit_cents": 300}).raise_for_status().json()
        order = http.post(
            "/api/orders",
            json={"quote_id": quote["quote_id"]},
            headers={"X-Forwarded-For": FORGED, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert order.status_code == 201, order.text
        placed = order.json()
        assert placed["checkout_url"].startswith(f"{shop}/checkout/sandbox/")
        http.post(placed["checkout_url"], json={"outcome": "paid"}).raise_for_status()
        auth = {"Authorization": f"Bearer {placed['order_token']}"}
        deadline = time.monotonic() + 60
        while True:
            body = http.get(f"/api/orders/{placed['order_id']}", headers=auth).json()
            if body["status"] == "fulfilled" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert body["status"] == "fulfilled", body
    return {**placed, "order": body}


def test_the_production_layout_serves_a_buyer_through_nginx(tmp_path):
    if not nginx_present():
        pytest.skip("nginx is not installed (make test runs scripts/proxy.sh)")
    site = tmp_path / "site"
    env = {
        **os.environ,
        "DEPLOY_EXTRA_ENV": f"CHEAPTOKENS_WORKER_STALE_SECONDS={STALE_SECONDS}",
        "DEPLOY_PG_ADMIN": PG_ADMIN,
    }
    restored = f"cheaptokens_restored_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        up = bash("deploy/up.sh", str(site), env=env)
        assert up.returncode == 0, up.stderr + logs_of(site)
        # deploy/smoke.sh bought $5 through nginx and used the key with the openai SDK.
        assert '"status": "fulfilled"' in up.stdout, up.stdout
        deployed = read_env(site / "deploy.env")
        settings = read_env(site / "etc" / "cheaptokens.env")
        shop = deployed["SHOP_URL"]
        assert settings["CHEAPTOKENS_TRUSTED_PROXIES"] == "127.0.0.1"

        # A buyer at 127.0.0.2 forging X-Forwarded-For: the shop sees what nginx forwarded.
        bought = buy_from(shop, BUYER)
        key = bought["order"]["key"]
        chat = openai.OpenAI(api_key=key["api_key"], base_url=key["base_url"]).chat.completions
        reply = chat.create(model="llama-3.3-70b", messages=[{"role": "user", "content": "Hi"}])
        assert reply.choices[0].message.content
        shop_db = create_engine(settings["CHEAPTOKENS_DATABASE_URL"])
        with shop_db.connect() as c:
            client = c.execute(
                text("SELECT client FROM orders WHERE id = :id"), {"id": bought["order_id"]}
            ).scalar()
        shop_db.dispose()
        assert client == hashlib.sha256(BUYER.encode()).hexdigest()[:16]
        access = "".join(p.read_text() for p in (site / "log").glob("web-*.log"))
        assert f'{BUYER}:0 - "POST /api/orders HTTP/1.1" 201' in access
        assert FORGED not in access

        # /metrics: refused without the token; with it, every process's counts add up.
        assert httpx.get(f"{shop}/metrics").status_code == 401
        token = settings["CHEAPTOKENS_METRICS_TOKEN"]
        scraped = httpx.get(f"{shop}/metrics", headers={"Authorization": f"Bearer {token}"})
        assert scraped.status_code == 200
        found = samples(scraped.text)
        assert found[("cheaptokens_sales_today", (("kind", "order"),))] == 2
        assert found[("cheaptokens_stock_sold_cents", (("account", "main"),))] == 800
        # orders were taken by the two web processes, keys made by the worker process
        checkouts = (("action", "create_checkout"), ("outcome", "ok"), ("provider", "sandbox"))
        assert found[("cheaptokens_payment_calls_total", checkouts)] == 2
        creations = (("method", "POST"), ("outcome", "200"), ("route", "/api_keys"))
        assert found[("cheaptokens_venice_requests_total", creations)] >= 1
        assert found[("cheaptokens_workers_fresh", ())] == 1
        assert token not in scraped.text and settings["CHEAPTOKENS_DATA_KEY"] not in scraped.text
        ready = httpx.get(f"{shop}/readyz")
        assert ready.status_code == 200, ready.text

        # Back up with pg_dump, restore into a new database, serve the order from it.
        dump = tmp_path / "shop.dump"
        backup = bash("deploy/pg-backup.sh", str(site / "etc" / "cheaptokens.env"), str(dump))
        assert backup.returncode == 0, backup.stderr
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{restored}" OWNER "{deployed["PG_ROLE"]}"'))
        restored_url = settings["CHEAPTOKENS_DATABASE_URL"].rsplit("/", 1)[0] + "/" + restored
        restore = bash("deploy/pg-restore.sh", str(dump), restored_url)
        assert restore.returncode == 0, restore.stderr
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        serve_env = {
            **os.environ,
            **settings,
            "CHEAPTOKENS_DATABASE_URL": restored_url,
            "CHEAPTOKENS_PUBLIC_URL": base,
            "CHEAPTOKENS_REDIS_URL": "",
        }
        serve_env.pop("PROMETHEUS_MULTIPROC_DIR")  # this process's counts stay its own
        serve = cheaptokens("serve", "--no-worker", "--port", str(port), "--log-level", "warning")
        with process(serve, env=serve_env, log=tmp_path / "restored.log") as proc:
            wait_http(f"{base}/healthz", proc, tries=600)
            auth = {"Authorization": f"Bearer {bought['order_token']}"}
            again = httpx.get(f"{base}/api/orders/{bought['order_id']}", headers=auth, timeout=30)
            assert again.status_code == 200, again.text
            assert again.json()["status"] == "fulfilled"
            assert again.json()["key"]["last6"] == key["last6"]
            checks = httpx.get(f"{base}/readyz", timeout=30).json()["checks"]
            assert checks["database"]["ok"] and checks["migrations"]["ok"], checks

        # The worker stops: within the stale limit /readyz (through nginx) says 503.
        os.kill(int((site / "run" / "worker.pid").read_text()), signal.SIGTERM)
        deadline = time.monotonic() + STALE_SECONDS + 20
        while time.monotonic() < deadline:
            ready = httpx.get(f"{shop}/readyz")
            if ready.status_code == 503:
                break
            time.sleep(1)
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["worker"]["ok"] is False
        assert ready.json()["checks"]["database"]["ok"] is True
    finally:
        with admin.connect() as c:  # first: it belongs to the role deploy/down.sh drops
            c.execute(text(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)'))
        down = bash("deploy/down.sh", str(site))
    assert down.returncode == 0, down.stderr
    assert "could not drop" not in down.stderr, down.stderr
    with admin.connect() as c:
        role = c.execute(
            text("SELECT count(*) FROM pg_roles WHERE rolname = :r"), {"r": deployed["PG_ROLE"]}
        ).scalar()
    admin.dispose()
    assert role == 0
    assert not (site / "deploy.env").exists()
    for pidfile in (site / "run").glob("*.pid"):
        raise AssertionError(f"{pidfile.name} left behind")
