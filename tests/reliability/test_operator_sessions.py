"""Issue #11, finding 2: operator sessions can be ended.

Reproduced before the fix: after logout the old ``ct_admin`` cookie still opened /admin, and
after CHEAPTOKENS_ADMIN_PASSWORD changed (and a restart) it kept working for up to 8 h: it was
signed over the user and expiry only. Now the session lives in ``admin_sessions`` (the cookie
holds a random id, the table its hash, bound to the password setting): logout deletes it, a
new password ends them all, and an idle or too old session ends by itself.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select
from starlette.testclient import TestClient

from cheaptokens import passwords
from cheaptokens.models import AdminSession
from cheaptokens.web.app import create_app
from support.shopkit import Kit, make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PASSWORD = "sessions-test-password-01"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the form"
    return found.group(1)


def login(client: TestClient, password: str = PASSWORD) -> str:
    """Log in through the form; returns the session cookie's value."""
    token = csrf_of(client.get("/admin/login").text)
    r = client.post(
        "/admin/login",
        data={"csrf_token": token, "username": "admin", "password": password},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    cookie = client.cookies.get("ct_admin")
    assert cookie
    return cookie


def opens_dashboard(app: Any, cookie: str) -> bool:
    """Does ``cookie`` alone (another browser holding a copy) open /admin?"""
    with TestClient(app, base_url="http://testserver") as other:
        other.cookies.set("ct_admin", cookie, path="/admin")
        r = other.get("/admin", follow_redirects=False)
    assert r.status_code in (200, 303), r.status_code
    return r.status_code == 200


def sessions_in_db(kit: Kit) -> list[AdminSession]:
    with kit.shop.db.read() as s:
        return list(s.scalars(select(AdminSession)))


def test_logout_ends_the_session_even_for_a_kept_copy_of_the_cookie(tmp_path):
    with make_kit(tmp_path, now=NOON, admin_password=PASSWORD) as kit:
        cookie = login(kit.web)
        assert opens_dashboard(kit.web.app, cookie)
        page = kit.web.get("/admin")
        r = kit.web.post(
            "/admin/logout", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False
        )
        assert r.status_code == 303 and r.headers["location"] == "/admin/login"
        assert kit.web.cookies.get("ct_admin") is None  # the browser forgets it…
        assert not opens_dashboard(kit.web.app, cookie)  # …and a kept copy opens nothing
        assert sessions_in_db(kit) == []
        # Nor can the copy act: a refund with it is refused as logged out.
        with TestClient(kit.web.app, base_url="http://testserver") as thief:
            thief.cookies.set("ct_admin", cookie, path="/admin")
            token = csrf_of(thief.get("/").text)
            refund = thief.post("/admin/orders/ord_x/refund", data={"csrf_token": token})
            assert refund.status_code == 401


def test_a_new_password_ends_every_session_and_a_restart_alone_does_not(tmp_path):
    with make_kit(tmp_path, now=NOON, admin_password=PASSWORD) as kit:
        first = login(kit.web)
        with TestClient(kit.web.app, base_url="http://testserver") as second_browser:
            second = login(second_browser)
        # A restart with the same settings: the sessions live on (they are in the database).
        restarted = create_app(kit.shop)
        assert opens_dashboard(restarted, first) and opens_dashboard(restarted, second)
        # The operator changes the password (here to a hash of a new one) and restarts.
        kit.shop.settings.admin_password = SecretStr(passwords.hash_password("new-pass-2026-x"))
        restarted = create_app(kit.shop)
        assert not opens_dashboard(restarted, first)
        assert not opens_dashboard(restarted, second)
        assert sessions_in_db(kit) == []  # ended sessions are deleted when met
        # Even a change of the same password's form (plain → hash) counts as a change.
        kit.shop.settings.admin_password = SecretStr(PASSWORD)
        third = login(kit.web)
        kit.shop.settings.admin_password = SecretStr(passwords.hash_password(PASSWORD))
        assert not opens_dashboard(kit.web.app, third)


def test_an_idle_session_ends_and_a_used_one_lives_until_its_end(tmp_path):
    with make_kit(
        tmp_path,
        now=NOON,
        admin_password=PASSWORD,
        admin_idle_seconds=600,
        admin_session_seconds=3600,
    ) as kit:
        cookie = login(kit.web)
        for _ in range(6):  # used every 590 s: never idle for 600 s
            kit.sandbox.clock.advance(590)
            assert opens_dashboard(kit.web.app, cookie)
        # 3540 s after the login, used 100 s ago: it ends at 3600 s although it is in use.
        kit.sandbox.clock.advance(100)
        assert not opens_dashboard(kit.web.app, cookie)
        idle = login(kit.web)
        kit.sandbox.clock.advance(599)
        assert opens_dashboard(kit.web.app, idle)
        kit.sandbox.clock.advance(601)
        assert not opens_dashboard(kit.web.app, idle)


def test_the_database_holds_only_a_hash_and_forged_cookies_open_nothing(tmp_path):
    with make_kit(tmp_path, now=NOON, admin_password=PASSWORD) as kit:
        cookie = login(kit.web)
        assert cookie.startswith("ctop_") and len(cookie) >= 40
        rows = sessions_in_db(kit)
        assert [r.id_hash for r in rows] == [hashlib.sha256(cookie.encode()).hexdigest()]
        assert cookie not in (tmp_path / "shop.db").read_bytes().decode("latin1")
        assert PASSWORD not in rows[0].password_fp
        for forged in (
            "9999999999.deadbeef",  # the old signed form
            "ctop_" + "A" * 43,
            rows[0].id_hash,  # the stored hash is not the cookie
            cookie[:-1],
            cookie + "x",
            "",
        ):
            assert not opens_dashboard(kit.web.app, forged), forged
        assert opens_dashboard(kit.web.app, cookie)


def test_log_out_every_session(tmp_path):
    with make_kit(tmp_path, now=NOON, admin_password=PASSWORD) as kit:
        with TestClient(kit.web.app, base_url="http://testserver") as laptop:
            lost = login(laptop)
        mine = login(kit.web)
        page = kit.web.get("/admin")
        assert page.text.count('data-label="Session"><code>') >= 2  # both listed
        r = kit.web.post(
            "/admin/sessions/end-all",
            data={"csrf_token": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/admin/login"
        assert not opens_dashboard(kit.web.app, lost)
        assert not opens_dashboard(kit.web.app, mine)


def test_a_new_login_replaces_the_browsers_previous_session(tmp_path):
    with make_kit(tmp_path, now=NOON, admin_password=PASSWORD) as kit:
        old = login(kit.web)
        new = login(kit.web)
        assert new != old
        assert not opens_dashboard(kit.web.app, old) and opens_dashboard(kit.web.app, new)
