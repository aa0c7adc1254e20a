"""Issue #11, finding 3: a client cannot choose its own address.

Reproduced before the fix: uvicorn believed ``X-Forwarded-For`` from 127.0.0.1 by default, so
30 orders, each with a new forged header, got 21 × 201 and no 429. Now a real
``cheaptokens serve`` believes forwarded headers only from CHEAPTOKENS_TRUSTED_PROXIES (none by
default); behind a trusted proxy the client is the address the proxy appended, whatever the
client put before it.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections import Counter

import httpx
import pytest
from pydantic import ValidationError

from cheaptokens.config import Settings
from reliability.webprocs import ADMIN, shop_env, web
from support.procs import sandbox

PER_MINUTE = 5


def client_hash(address: str) -> str:
    """How the shop records a client (web.deps.client_id)."""
    return hashlib.sha256(address.encode()).hexdigest()[:16]


def forged(i: int) -> dict[str, str]:
    """A different made-up origin for every request, in every header a proxy might set."""
    ip = f"203.0.113.{i + 1}"
    return {
        "X-Forwarded-For": ip if i % 2 else f"{ip}, 198.51.100.{i + 1}",
        "X-Real-IP": ip,
        "Forwarded": f"for={ip};proto=https",
        "X-Forwarded-Proto": "https",
        "Idempotency-Key": str(uuid.uuid4()),
    }


def recorded_clients(tmp_path) -> Counter[str]:
    with sqlite3.connect(tmp_path / "shop.db") as db:
        return Counter(c for (c,) in db.execute("SELECT client FROM orders"))


def test_forged_forwarded_headers_do_not_escape_the_limit(tmp_path):
    with sandbox(f"{ADMIN}:100", log=tmp_path / "sb.log") as venice:
        env = shop_env(tmp_path, venice, orders_per_minute=str(PER_MINUTE))
        with web(env, tmp_path / "web.log") as base, httpx.Client(timeout=30) as http:
            answers = [
                http.post(f"{base}/api/orders", json={"credit_cents": 100}, headers=forged(i))
                for i in range(30)
            ]
        codes = Counter(r.status_code for r in answers)
        assert codes == Counter({201: PER_MINUTE, 429: 30 - PER_MINUTE}), codes
        assert all(r.json()["error"]["code"] == "rate_limited" for r in answers[PER_MINUTE:])
        # Every order is the connecting address's, none a forged one's.
        assert recorded_clients(tmp_path) == Counter({client_hash("127.0.0.1"): PER_MINUTE})


def test_behind_a_trusted_proxy_the_client_is_what_the_proxy_appended(tmp_path):
    """We play the proxy at 127.0.0.1: it appends the address it saw to X-Forwarded-For."""
    with sandbox(f"{ADMIN}:100", log=tmp_path / "sb.log") as venice:
        env = shop_env(tmp_path, venice, orders_per_minute=str(PER_MINUTE))
        with (
            web(env, tmp_path / "web.log", trusted_proxies="127.0.0.1, 10.0.0.0/8") as base,
            httpx.Client(timeout=30) as http,
        ):

            def order(chain: str) -> int:
                r = http.post(
                    f"{base}/api/orders",
                    json={"credit_cents": 100},
                    headers={"X-Forwarded-For": chain, "Idempotency-Key": str(uuid.uuid4())},
                )
                return r.status_code

            # One real client forging a new address before the proxy's entry every time
            # (and through a second, inner trusted proxy): still one client, limited.
            attacker = "198.51.100.7"
            codes = [order(f"203.0.113.{i}, {attacker}, 10.1.2.3") for i in range(PER_MINUTE + 3)]
            assert codes == [201] * PER_MINUTE + [429] * 3
            # Other clients behind the same proxy are told apart and served.
            assert [order(f"192.0.2.{i}") for i in range(1, 4)] == [201, 201, 201]
        clients = recorded_clients(tmp_path)
        assert clients[client_hash(attacker)] == PER_MINUTE
        assert client_hash("127.0.0.1") not in clients
        assert {client_hash(f"192.0.2.{i}") for i in range(1, 4)} <= set(clients)


def test_a_wildcard_or_a_name_is_refused_as_a_proxy():
    for bad in ("*", "proxy.internal", "127.0.0.1, everyone"):
        with pytest.raises(ValidationError, match="CHEAPTOKENS_TRUSTED_PROXIES"):
            Settings(trusted_proxies=bad)
    assert Settings(trusted_proxies=" 10.0.0.1, fd00::/8 ").proxies == ["10.0.0.1", "fd00::/8"]
    assert Settings().proxies == []
