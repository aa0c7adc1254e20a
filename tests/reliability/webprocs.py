"""``cheaptokens serve`` as real OS processes, for the tests of the shop's HTTP edge (issue #11):
shared rate limits, forwarded headers, access logs. Also Redis, with a key prefix per test."""

from __future__ import annotations

import os
import pathlib
import re
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest

from support.procs import cheaptokens, free_port, process, run, wait_http

REDIS_URL = os.environ.get("CHEAPTOKENS_TEST_REDIS", "redis://127.0.0.1:6379/0")
ADMIN = "VENICE_ADMIN_KEY_webprocs_not_real"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of its own in the test Redis (scripts/services.sh starts it); the keys
    are deleted afterwards. Skipped where there is no Redis (a failure unless skips are allowed,
    see tests/conftest.py)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        client.close()
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (scripts/services.sh starts it)")
    prefix = f"ct-test-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()


def shop_env(tmp_path: pathlib.Path, venice: str, **settings: str) -> dict[str, str]:
    """The environment of a shop on a migrated SQLite file with its accounts read."""
    env = {
        **os.environ,
        "CHEAPTOKENS_DATABASE_URL": f"sqlite:///{tmp_path / 'shop.db'}",
        "CHEAPTOKENS_DATA_DIR": str(tmp_path),
        "CHEAPTOKENS_VENICE_BASE_URL": venice,
        "CHEAPTOKENS_VENICE_ADMIN_KEYS": f"main={ADMIN}",
        "CHEAPTOKENS_POOL_SIZE": "0",
        "CHEAPTOKENS_REPRICING": "false",
        **{f"CHEAPTOKENS_{k.upper()}": v for k, v in settings.items()},
    }
    for step in (("db", "upgrade"), ("accounts", "refresh")):
        done = run(cheaptokens(*step), env)
        assert done.returncode == 0, done.stderr
    return env


@contextmanager
def web(env: dict[str, str], log: pathlib.Path, *args: str, **settings: str) -> Iterator[str]:
    """One ``cheaptokens serve --no-migrate`` on a free port; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    extra = {f"CHEAPTOKENS_{k.upper()}": v for k, v in settings.items()}
    command = cheaptokens("serve", "--no-migrate", "--port", str(port), *args)
    with process(command, env={**env, "CHEAPTOKENS_PUBLIC_URL": base, **extra}, log=log) as proc:
        wait_http(f"{base}/healthz", proc, tries=600)
        yield base


@contextmanager
def webs(
    env: dict[str, str], tmp_path: pathlib.Path, count: int, **settings: str
) -> Iterator[list[str]]:
    """``count`` web processes (no worker) on the same database and settings."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                web(
                    env,
                    tmp_path / f"web-{i}.log",
                    "--no-worker",
                    "--log-level",
                    "warning",
                    **settings,
                )
            )
            for i in range(count)
        ]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the form"
    return found.group(1)


def login(http: httpx.Client, base: str, password: str, username: str = "admin") -> Any:
    """One operator login attempt through the form (CSRF cookie and field included)."""
    token = csrf_of(http.get(f"{base}/admin/login").text)
    return http.post(
        f"{base}/admin/login",
        data={"csrf_token": token, "username": username, "password": password},
    )
