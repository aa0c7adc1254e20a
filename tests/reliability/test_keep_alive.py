"""An idle connection outlives the clients' own idle expiry.

httpx (and so the openai SDK) keeps an idle connection 5 s, and so did uvicorn: a buyer's
request sent on a pooled connection just as the server closed it was dropped (seen as an
``httpx.ReadError`` on a checkout in the 200-buyer race test). ``cheaptokens serve`` and
``cheaptokens sandbox`` now keep idle connections ``KEEP_ALIVE_SECONDS``: a connection left
idle longer than a client keeps it still answers, on the shop and on the sandbox its buyers
call.
"""

from __future__ import annotations

import http.client
import os
import time

import pytest

from cheaptokens.cli._common import KEEP_ALIVE_SECONDS
from support.procs import cheaptokens, free_port, process, wait_http

IDLE = 6.0  # longer than httpx's idle expiry and uvicorn's default keep-alive (5 s)


def two_requests_on_one_connection(port: int, path: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        first = connection.getresponse()
        first.read()
        assert first.status == 200
        sock = connection.sock
        time.sleep(IDLE)
        # Closed by the server, this raises RemoteDisconnected (the dropped request).
        connection.request("GET", path)
        second = connection.getresponse()
        second.read()
        assert second.status == 200
        assert connection.sock is sock  # the same connection, not a new one
    finally:
        connection.close()


@pytest.mark.slow
def test_idle_connections_outlive_the_clients_expiry(tmp_path):
    assert KEEP_ALIVE_SECONDS > IDLE
    port, sandbox_port = free_port(), free_port()
    env = {
        **os.environ,
        "CHEAPTOKENS_DATA_DIR": str(tmp_path),
        "CHEAPTOKENS_PORT": str(port),
        "CHEAPTOKENS_SANDBOX_PORT": str(sandbox_port),
        "CHEAPTOKENS_POOL_SIZE": "0",
        "CHEAPTOKENS_REPRICING": "false",
    }
    for name in ("CHEAPTOKENS_DATABASE_URL", "DATABASE_URL", "CHEAPTOKENS_VENICE_BASE_URL"):
        env.pop(name, None)
    with process(cheaptokens("serve"), env=env, log=tmp_path / "serve.log") as proc:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, tries=600)
        two_requests_on_one_connection(port, "/healthz")
        two_requests_on_one_connection(sandbox_port, "/api/v1/models")


@pytest.mark.slow
def test_the_standalone_sandbox_keeps_idle_connections_too(tmp_path):
    port = free_port()
    command = cheaptokens("sandbox", "--port", str(port))
    with process(command, log=tmp_path / "sandbox.log") as proc:
        wait_http(f"http://127.0.0.1:{port}/api/v1/models", proc)
        two_requests_on_one_connection(port, "/api/v1/models")
