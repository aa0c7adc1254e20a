"""Issue #11, finding 1: the operator login cannot be brute-forced.

Reproduced before the fix: 300 wrong passwords to /admin/login in 1.5 s, all 401, and the
right password accepted right after. Now every attempt counts per client address and per
user name; a used-up tier answers 429 with Retry-After — to the right password too — and a
longer tier makes the wait grow; a lockout is an alert on the dashboard; the setting may be
an Argon2id or scrypt hash, checked in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from cheaptokens import passwords
from cheaptokens.config import Settings
from support.shopkit import make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PASSWORD = "login-test-password-0001"
ATTACKER = ("203.0.113.66", 40000)
#: Limits with short windows so that a test can wait one out.
FAST = {"admin_login_client_limits": "3/2 seconds;5/minute", "admin_login_user_limits": "99/day"}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the form"
    return found.group(1)


def attempt(client: TestClient, password: str, username: str = "admin") -> Any:
    token = csrf_of(client.get("/admin/login").text)
    return client.post(
        "/admin/login",
        data={"csrf_token": token, "username": username, "password": password},
        follow_redirects=False,
    )


def client_at(app: Any, address: tuple[str, int]) -> TestClient:
    return TestClient(app, base_url="http://testserver", client=address)


def test_many_wrong_passwords_then_the_right_one_is_refused(tmp_path):
    """The reproduction, scaled down: 30 wrong passwords, then the right one."""
    with make_kit(tmp_path, now=NOON, admin_password=PASSWORD) as kit:
        started = time.monotonic()
        statuses = Counter(attempt(kit.web, f"guess-{i}").status_code for i in range(30))
        assert statuses == Counter({401: 5, 429: 25}), statuses  # 5/minute per client
        right = attempt(kit.web, PASSWORD)
        assert right.status_code == 429, "the right password got in during a lockout"
        assert "ct_admin" not in right.headers.get("set-cookie", "")
        assert 1 <= int(right.headers["Retry-After"]) <= 60
        assert "Too many failed logins; wait" in right.text
        assert time.monotonic() - started < 60  # still inside the first tier's window
        assert kit.web.get("/admin", follow_redirects=False).status_code == 303


def test_the_wait_grows_tier_by_tier_and_other_clients_are_not_held_back(tmp_path):
    with make_kit(tmp_path, now=NOON, admin_password=PASSWORD, **FAST) as kit:
        attacker = client_at(kit.web.app, ATTACKER)
        with attacker:
            assert [attempt(attacker, "nope").status_code for _ in range(3)] == [401] * 3
            first = attempt(attacker, PASSWORD)
            assert first.status_code == 429
            short_wait = int(first.headers["Retry-After"])
            assert 1 <= short_wait <= 2
            # The operator, from another address, is not locked out by the attacker.
            assert attempt(kit.web, PASSWORD).status_code == 303
            time.sleep(short_wait + 0.2)
            # The 2-second tier has room again; the minute tier (5) has 2 attempts left.
            assert [attempt(attacker, "nope").status_code for _ in range(2)] == [401, 401]
            second = attempt(attacker, PASSWORD)
            assert second.status_code == 429
            long_wait = int(second.headers["Retry-After"])
            assert short_wait < long_wait <= 60, (short_wait, long_wait)


def test_the_user_name_is_limited_whatever_the_address(tmp_path):
    """Guessing from many addresses (a botnet) still counts against the user name."""
    limits = {"admin_login_client_limits": "99/minute", "admin_login_user_limits": "4/minute"}
    with make_kit(tmp_path, now=NOON, admin_password=PASSWORD, **limits) as kit:
        statuses = []
        for i in range(7):
            with client_at(kit.web.app, (f"198.51.100.{i + 1}", 1000 + i)) as bot:
                statuses.append(attempt(bot, f"guess-{i}").status_code)
        assert statuses == [401] * 4 + [429] * 3
        with client_at(kit.web.app, ("192.0.2.200", 5555)) as fresh:
            locked = attempt(fresh, PASSWORD)
            assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
            # Another user name has its own count (and never gets in: it is not the operator's).
            assert attempt(fresh, PASSWORD, username="root").status_code == 401


def test_a_lockout_is_one_alert_on_the_dashboard_without_what_was_typed(tmp_path):
    typed_as_user = "my-real-password-typed-in-the-wrong-field"
    limits = {"admin_login_client_limits": "2/minute", "admin_login_user_limits": "99/minute"}
    with make_kit(tmp_path, now=NOON, admin_password=PASSWORD, **limits) as kit:
        with client_at(kit.web.app, ATTACKER) as attacker:
            codes = [attempt(attacker, "x", username=typed_as_user).status_code for _ in range(6)]
            assert codes == [401, 401, 429, 429, 429, 429]
        assert attempt(kit.web, PASSWORD).status_code == 303
        page = kit.web.get("/admin")
        assert page.status_code == 200
        rows = re.findall(r"<td data-label=\"Kind\">admin_login_locked</td>", page.text)
        assert len(rows) == 1, "one alert per lockout, not one per refused attempt"
        assert "Operator login locked from client" in page.text
        assert typed_as_user not in page.text


@pytest.mark.parametrize("scheme", ["argon2", "scrypt"])
def test_the_setting_may_hold_a_hash(tmp_path, scheme):
    hashed = passwords.hash_password(PASSWORD, scheme=scheme)
    assert PASSWORD not in hashed
    with make_kit(tmp_path, now=NOON, admin_password=hashed) as kit:
        assert attempt(kit.web, "wrong-password").status_code == 401
        assert attempt(kit.web, hashed).status_code == 401  # the hash is not the password
        ok = attempt(kit.web, PASSWORD)
        assert ok.status_code == 303 and ok.headers["location"] == "/admin"
        assert kit.web.get("/admin").status_code == 200


def test_a_malformed_hash_stops_the_shop_without_echoing_it():
    for broken in ("$argon2id$v=19$garbage", "scrypt:3:8:1:c2FsdHNhbHQ=:aGFzaA==", "scrypt:x"):
        with pytest.raises(ValidationError) as info:
            Settings(admin_password=broken)
        assert "CHEAPTOKENS_ADMIN_PASSWORD" in str(info.value)
        assert broken not in str(info.value)


def test_hash_password_command_prints_a_hash_and_never_the_password():
    for extra in ([], ["--scheme", "scrypt"]):
        done = subprocess.run(
            [sys.executable, "-m", "cheaptokens", "admin", "hash-password", *extra],
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        hashed = done.stdout.strip()
        assert hashed.startswith("$argon2id$" if not extra else "scrypt:")
        assert PASSWORD not in done.stdout + done.stderr
        assert passwords.verify(hashed, PASSWORD) and not passwords.verify(hashed, PASSWORD + "x")
        assert Settings(admin_password=hashed).admin_password.get_secret_value() == hashed


def test_password_and_user_are_both_checked_in_constant_time(tmp_path, monkeypatch):
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(x: Any, y: Any) -> bool:
        calls.append((x, y))
        return real(x, y)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with make_kit(tmp_path, now=NOON, admin_password=PASSWORD) as kit:
        for username, password in (("nobody", PASSWORD), ("admin", "a"), ("admin", "b" * 500)):
            calls.clear()
            assert attempt(kit.web, password, username=username).status_code == 401
            # One comparison of user-name digests, one of password digests, all 32 bytes —
            # also when the user name is already wrong, so the time tells neither which one
            # was wrong nor how long the operator's user name is.
            # (The form's CSRF token is compared too, as hex text.)
            checks = [(x, y) for x, y in calls if isinstance(x, bytes)]
            assert len(checks) == 2 and all(len(x) == len(y) == 32 for x, y in checks), calls
            assert checks[0][0] == hashlib.sha256(username.encode()).digest()
