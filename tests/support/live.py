"""A whole shop over real HTTP for browser and docs-sample tests.

The Venice sandbox and the shop each run under uvicorn in a thread on a free port, so a
buyer's key works with the ``openai`` SDK, curl or a browser exactly as offline ``make run``.
The shop's clock is the sandbox's (running) clock; the shop's in-process worker provisions.
"""

from __future__ import annotations

import pathlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import uvicorn

from cheaptokens import migrate
from cheaptokens.config import SANDBOX_ADMIN_KEY, Settings
from cheaptokens.sandbox import AccountSpec, Sandbox
from cheaptokens.shop import Shop, build_shop
from cheaptokens.web.app import create_app
from cheaptokens.worker.maintenance import refresh_accounts
from cheaptokens.worker.runner import Worker
from support.procs import free_port

ADMIN_PASSWORD = "correct-horse-test-only"


@contextmanager
def serve(app: Any, port: int) -> Iterator[None]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@dataclass
class Live:
    shop: Shop
    sandbox: Sandbox
    url: str  # the shop, e.g. http://127.0.0.1:PORT
    venice_url: str  # the buyer's base URL (…/api/v1)

    def buy(self, credit_cents: int = 500) -> dict[str, Any]:
        """Quote, order, pay (sandbox) and wait for the key; returns order + status JSON."""
        with httpx.Client(base_url=self.url, timeout=10) as http:
            quote = http.post("/api/quotes", json={"credit_cents": credit_cents})
            quote.raise_for_status()
            order = http.post("/api/orders", json={"quote_id": quote.json()["quote_id"]})
            order.raise_for_status()
            body: dict[str, Any] = order.json()
            paid = http.post(body["checkout_url"], json={"outcome": "paid"})
            paid.raise_for_status()
            auth = {"Authorization": f"Bearer {body['order_token']}"}
            for _ in range(200):
                status = http.get(f"/api/orders/{body['order_id']}", headers=auth).json()
                if status["status"] != "paid":
                    break
                time.sleep(0.05)
            body["final"] = status
            return body


@contextmanager
def live_shop(tmp_path: pathlib.Path, *, now: datetime, **settings: Any) -> Iterator[Live]:
    sandbox = Sandbox(
        [AccountSpec(admin_key=SANDBOX_ADMIN_KEY, diem=Decimal(100))], now=now, frozen=False
    )
    sb_port, shop_port = free_port(), free_port()
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    migrate.upgrade(url)
    venice_url = f"http://127.0.0.1:{sb_port}/api/v1"
    settings.setdefault("max_held_share", 1)  # one test client buys for many buyers
    settings.setdefault("overshoot_reserve_cents", 0)  # tested on its own
    cfg = Settings(
        database_url=url,
        data_dir=tmp_path,
        public_url=f"http://127.0.0.1:{shop_port}",
        venice_base_url=venice_url,
        admin_password=ADMIN_PASSWORD,
        quotes_per_minute=1000,
        orders_per_minute=1000,
        pricing_cache_seconds=0,
        **settings,
    )
    with serve(sandbox.app, sb_port):
        shop = build_shop(cfg, clock=sandbox.clock.now)
        try:
            refresh_accounts(db=shop.db, gateways=shop.gateways, clock=shop.clock)
            worker = Worker.for_shop(shop)
            app = create_app(
                shop,
                background=lambda stop: worker.run_forever(
                    stop, poll=cfg.worker_poll_seconds, threads=cfg.worker_threads
                ),
            )
            with serve(app, shop_port):
                yield Live(shop, sandbox, f"http://127.0.0.1:{shop_port}", venice_url)
        finally:
            shop.close()
