"""The operator's commands against a running sandbox, on SQLite and on PostgreSQL."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime

import httpx
import pytest

from cheaptokens.config import Settings
from cheaptokens.orders import forecasts
from support.procs import free_port

ADMIN = "VENICE_ADMIN_KEY_cli_test_not_real"


@pytest.fixture(scope="module")
def sandbox_url():
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cheaptokens",
            "sandbox",
            "--port",
            str(port),
            "--admin-key",
            ADMIN,
            "--diem",
            "50",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/v1"
    for _ in range(100):
        try:
            httpx.get(f"{url}/models", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def cli(env, *args, ok=True):
    r = subprocess.run(
        [sys.executable, "-m", "cheaptokens", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if ok:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_every_command_has_help():
    env = dict(os.environ)
    for args in (
        ["--help"],
        ["serve", "--help"],
        ["worker", "--help"],
        ["sandbox", "--help"],
        ["db", "--help"],
        ["db", "upgrade", "--help"],
        ["db", "backup", "--help"],
        ["db", "prune", "--help"],
        ["accounts", "--help"],
        ["accounts", "list", "--help"],
        ["orders", "--help"],
        ["orders", "refund", "--help"],
        ["pricing", "--help"],
        ["pricing", "refit", "--help"],
        ["pricing", "pin", "--help"],
        ["pricing", "forecast", "--help"],
    ):
        out = cli(env, *args).stdout
        assert "usage: cheaptokens" in out


def audit_log(shop) -> list[tuple[str, str, str | None, dict]]:
    from cheaptokens import operators

    rows = reversed(operators.recent_actions(shop.db))
    return [(r.session, r.action, r.target, r.detail) for r in rows]


def test_operator_commands(tmp_path, db_url, sandbox_url):
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CHEAPTOKENS_DATA_DIR": str(tmp_path),
        "CHEAPTOKENS_VENICE_BASE_URL": sandbox_url,
        "CHEAPTOKENS_VENICE_ADMIN_KEYS": f"main={ADMIN}",
    }
    cli(env, "db", "upgrade")
    assert cli(env, "db", "current").stdout.strip().startswith("0")
    assert "1 of 1 accounts answered" in cli(env, "accounts", "refresh").stdout
    listing = cli(env, "accounts", "list").stdout
    assert "main" in listing and "$50.00" in listing and "$44.00" in listing  # 50×0.9 − 1
    assert "price per $1" in cli(env, "pricing", "show").stdout
    assert len(cli(env, "pricing", "replan").stdout.strip()) == 64  # the new set's hash
    refit = cli(env, "pricing", "refit", "--days", "3").stdout
    assert "nothing stored" in refit  # a fresh shop: no history to learn from
    assert "requests/day" in cli(env, "pricing", "refit", "--dry-run").stdout
    assert "configured" in cli(env, "pricing", "forecast").stdout
    bad = cli(env, "pricing", "refit", "--days", "0", ok=False)
    assert bad.returncode == 2 and "--days" in bad.stderr
    no_pin = cli(env, "pricing", "pin", ok=False)
    assert no_pin.returncode == 1 and "no learned forecast" in no_pin.stderr
    assert cli(env, "pricing", "pin", "7", ok=False).returncode == 1
    assert "nothing pinned" in cli(env, "pricing", "unpin").stdout

    # A paid order, made the way the web would, then handled from the command line.
    from cheaptokens.shop import build_shop
    from support.shopkit import paid_order

    shop = build_shop(
        Settings(
            database_url=db_url,
            data_dir=tmp_path,
            venice_base_url=sandbox_url,
            venice_admin_keys=f"main={ADMIN}",
        )
    )
    try:
        assert audit_log(shop) == []  # the refused pins and the empty unpin changed nothing
        order_id = paid_order(shop, 300)
        with shop.db.begin() as session:
            version = forecasts.store(
                session,
                forecast=forecasts.configured(Settings()),
                window_start=date(2026, 11, 1),
                window_end=date(2026, 11, 2),
                data={},
                now=datetime.now(UTC),
            )
        assert f"pinned forecast version {version}" in cli(env, "pricing", "pin").stdout
        assert "unpinned" in cli(env, "pricing", "unpin").stdout
        cli(env, "worker", "--once")
        assert "fulfilled" in cli(env, "orders", "list").stdout
        shown = cli(env, "orders", "show", order_id).stdout
        assert "key_created" in shown and "VENICE_INFERENCE_KEY_" not in shown
        refund = cli(env, "orders", "refund", order_id, "--reason", "buyer wrote in")
        assert "refund queued" in refund.stdout
        cli(env, "worker", "--once")
        assert "refunded" in cli(env, "orders", "list", "--status", "refunded").stdout
        again = cli(env, "orders", "refund", order_id, ok=False)  # refunded: nothing to do
        assert again.returncode == 1
        assert cli(env, "orders", "refund", "ord_missing", ok=False).returncode == 1
        # Every change made from the shell is in the dashboard's audit log, naming the user;
        # the refused ones are not.
        who = f"cli:{getpass.getuser()}"
        assert audit_log(shop) == [
            (who, "pin_forecast", str(version), {}),
            (who, "unpin_forecast", None, {}),
            (who, "refund", order_id, {"reason": "buyer wrote in"}),
        ]
    finally:
        shop.close()
    keys = httpx.get(
        f"{sandbox_url}/api_keys", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()["data"]
    assert not [k for k in keys if k["description"] == f"cheaptokens:{order_id}"]
    assert cli(env, "orders", "show", "ord_missing", ok=False).returncode == 1


def test_sqlite_backup_and_restore(tmp_path):
    db = tmp_path / "shop.db"
    env = {
        **os.environ,
        "CHEAPTOKENS_DATABASE_URL": f"sqlite:///{db}",
        "CHEAPTOKENS_DATA_DIR": str(tmp_path),
    }
    cli(env, "db", "upgrade")
    backup = tmp_path / "backup.db"
    cli(env, "db", "backup", str(backup))
    cli(env, "db", "downgrade", "--revision", "base")
    assert cli(env, "db", "current").stdout.strip() == "(empty)"
    cli(env, "db", "restore", str(backup))
    assert cli(env, "db", "current").stdout.strip() != "(empty)"
