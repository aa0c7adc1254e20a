"""A live sandbox served by uvicorn on a free port, in a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import uvicorn

from cheaptokens.sandbox import AccountSpec, Sandbox

ADMIN_KEY = "VENICE_ADMIN_KEY_sandbox_0000"
START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@dataclass
class LiveSandbox:
    sandbox: Sandbox
    base_url: str  # ends with /api/v1
    root: str


@contextmanager
def serving(sandbox: Sandbox) -> Iterator[LiveSandbox]:
    """Serve ``sandbox`` over real HTTP until the block ends."""
    config = uvicorn.Config(
        sandbox.app, host="127.0.0.1", port=0, lifespan="off", log_level="critical"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:  # a start-up wait, not an assertion on timing
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    root = f"http://127.0.0.1:{port}"
    try:
        yield LiveSandbox(sandbox, f"{root}/api/v1", root)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def live_sandbox() -> Iterator[LiveSandbox]:
    with serving(Sandbox([AccountSpec(ADMIN_KEY, diem=Decimal("100"))], now=START)) as live:
        yield live
