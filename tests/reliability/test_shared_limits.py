"""Issue #11, finding 4: the limits hold across web processes.

Reproduced before the fix: each ``cheaptokens serve`` process counted on its own, so N
processes behind a proxy let a client make N times the limit. Now, with
``CHEAPTOKENS_REDIS_URL``, two real ``cheaptokens serve --no-worker`` processes on one SQLite
file count quotes, orders and operator logins in the same Redis (a key prefix per test).
"""

from __future__ import annotations

import sqlite3

import httpx

from reliability.webprocs import ADMIN, REDIS_URL, login, redis_prefix, shop_env, webs
from support.procs import sandbox

__all__ = ["redis_prefix"]  # the fixture

PASSWORD = "shared-limits-password-01"


def test_quote_order_and_login_limits_hold_across_two_processes(tmp_path, redis_prefix):
    with sandbox(f"{ADMIN}:100", log=tmp_path / "sb.log") as venice:
        env = shop_env(
            tmp_path,
            venice,
            redis_url=REDIS_URL,
            redis_key_prefix=redis_prefix,
            quotes_per_minute="4",
            orders_per_minute="2",
            admin_password=PASSWORD,
            admin_login_client_limits="3/minute",
            admin_login_user_limits="50/minute",
        )
        with webs(env, tmp_path, 2) as (a, b), httpx.Client(timeout=30) as http:
            # One client, alternating between the two processes.
            quotes = [
                http.post(f"{(a, b)[i % 2]}/api/quotes", json={"credit_cents": 100})
                for i in range(8)
            ]
            assert [q.status_code for q in quotes] == [201] * 4 + [429] * 4
            assert all(1 <= int(q.headers["Retry-After"]) <= 60 for q in quotes[4:])
            orders = [
                http.post(f"{(b, a)[i % 2]}/api/orders", json={"credit_cents": 100})
                for i in range(5)
            ]
            assert [o.status_code for o in orders] == [201] * 2 + [429] * 3
            # Operator logins: 3 wrong attempts spread over both, then the right password.
            codes = [login(http, (a, b)[i % 2], "wrong").status_code for i in range(3)]
            assert codes == [401, 401, 401]
            assert login(http, b, PASSWORD).status_code == 429
            assert login(http, a, PASSWORD).status_code == 429
            # Refused clients do not stop anyone else: both processes still serve.
            assert http.get(f"{a}/api/supply").status_code == 200
            assert http.get(f"{b}/api/supply").status_code == 200
        # One lockout, one alert — though both processes refused the client.
        with sqlite3.connect(tmp_path / "shop.db") as db:
            kinds = [k for (k,) in db.execute("SELECT kind FROM alerts")]
        assert kinds.count("admin_login_locked") == 1, kinds


def test_without_redis_each_process_counts_alone(tmp_path):
    """The offline default (memory): the same client gets the limit from each process —
    which is why several web processes need CHEAPTOKENS_REDIS_URL (docs/operations.md)."""
    with sandbox(f"{ADMIN}:100", log=tmp_path / "sb.log") as venice:
        env = shop_env(tmp_path, venice, quotes_per_minute="2")
        with webs(env, tmp_path, 2) as (a, b), httpx.Client(timeout=30) as http:
            codes = [
                http.post(f"{(a, b)[i % 2]}/api/quotes", json={"credit_cents": 100}).status_code
                for i in range(6)
            ]
            assert codes == [201] * 4 + [429] * 2
