"""The operator's dashboard under ``/admin``, behind a login form.

Credentials come from ``Settings.admin_user`` / ``admin_password`` (the password or its hash,
:mod:`cheaptokens.passwords`); an empty password keeps the dashboard closed. Logins are rate
limited (:mod:`cheaptokens.web.limits`); a session lives on the server
(:mod:`cheaptokens.operators`) and its random id rides in the HttpOnly ``ct_admin`` cookie.
The figures come from :func:`cheaptokens.orders.flows.dashboard`, the key counts from Venice.

**Every operator POST goes through** :func:`operator_action`: it refuses a request without a
live session (401) or without the form's CSRF token (403), and runs the action inside
:func:`cheaptokens.operators.audited`, so the action and its ``operator_actions`` row
commit together. ``tests/reliability/test_operator_actions.py`` finds every POST route under
``/admin`` and fails for one that does not behave so (or that it has no example for).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cheaptokens import operators, passwords
from cheaptokens.db import Database
from cheaptokens.errors import ShopError
from cheaptokens.money import format_usd
from cheaptokens.orders import flows
from cheaptokens.shop import Shop
from cheaptokens.web import charts, csrf
from cheaptokens.web.deps import ShopDep, client_id, limiter
from cheaptokens.web.limits import LoginLocked, user_key
from cheaptokens.web.pages import FormText, html_error, secure_cookies
from cheaptokens.web.render import render

router = APIRouter(prefix="/admin", include_in_schema=False)


def _password(shop: Shop) -> str:
    return shop.settings.admin_password.get_secret_value()


def _fingerprint(shop: Shop) -> str:
    return csrf.password_fingerprint(shop.box.mac_key, shop.settings.admin_user, _password(shop))


def _closed(request: Request) -> HTMLResponse:
    return html_error(
        request,
        status=503,
        title="The dashboard is closed",
        message="No operator password is configured. Set CHEAPTOKENS_ADMIN_PASSWORD (and "
        "optionally CHEAPTOKENS_ADMIN_USER) and restart the shop to open it.",
    )


def operator_session(request: Request, shop: Shop) -> operators.OperatorSession | None:
    """The live operator session of this request (its idle clock restarted), or None."""
    if not _password(shop):
        return None
    return operators.current_session(
        shop.db,
        cookie=request.cookies.get(csrf.ADMIN_COOKIE),
        fingerprint=_fingerprint(shop),
        now=shop.clock(),
        idle_seconds=shop.settings.admin_idle_seconds,
    )


def _login_page(request: Request, shop: Shop, *, status: int = 200, error: str = "") -> Response:
    token = csrf.CsrfToken(request, shop.box.mac_key)
    response = render(
        request, "admin/login.html", status_code=status, csrf_token=token.value, error=error
    )
    return token.set_cookie(response, secure=secure_cookies(shop))


def _logged_out(request: Request) -> HTMLResponse:
    return html_error(
        request,
        status=401,
        title="Please log in",
        message="Your operator session has ended. Log in and try again.",
        next_href="/admin/login",
        next_label="Log in",
    )


def operator_action(
    request: Request,
    shop: Shop,
    csrf_token: str,
    *,
    action: str,
    target: str | None,
    run: Callable[[Database, operators.OperatorSession], object],
    done: str,
    failure_title: str,
    detail: dict[str, Any] | None = None,
    when_logged_out: Response | None = None,
) -> Response:
    """The one way an operator POST changes anything.

    1. The dashboard must be open and the request must carry a live session (else 401, or
       ``when_logged_out``);
    2. the form's CSRF token must match the browser's cookie (else 403);
    3. ``run(db, session)`` does the action with a :class:`Database` bound to one
       transaction that also appends the audit row (``action``, ``target``, ``detail``,
       the session's hash): both commit, or neither does. A :class:`ShopError` becomes an
       error page.

    Then the browser is sent to ``done``. ``detail`` is shown on the dashboard: never put a
    secret in it.
    """
    if not _password(shop):
        return _closed(request)
    session = operator_session(request, shop)
    if session is None:
        return when_logged_out or _logged_out(request)
    try:
        csrf.verify(request, shop.box.mac_key, csrf_token)
        with operators.audited(
            shop.db, session=session, action=action, target=target, detail=detail, now=shop.clock()
        ) as db:
            run(db, session)
    except csrf.CsrfRejected as exc:
        return html_error(
            request,
            status=403,
            title="Form expired",
            message=exc.message,
            next_href="/admin",
            next_label="Back to the dashboard",
        )
    except operators.SessionEnded:
        return when_logged_out or _logged_out(request)
    except ShopError as exc:
        return html_error(
            request,
            status=exc.status,
            title=failure_title,
            message=exc.message,
            next_href="/admin",
            next_label="Back to the dashboard",
        )
    return RedirectResponse(done, status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, shop: ShopDep) -> Response:
    if not _password(shop):
        return _closed(request)
    return _login_page(request, shop)


@router.post("/login")
def login(
    request: Request,
    shop: ShopDep,
    csrf_token: FormText = "",
    username: FormText = "",
    password: FormText = "",
) -> Response:
    """Log the operator in. Every attempt counts against the client's and the user name's
    limits (:mod:`cheaptokens.web.limits`); past them the answer is 429 with Retry-After,
    whatever the password, and the dashboard gets an alert. A success opens a session on the
    server (:func:`cheaptokens.operators.open_session`, audited as ``login``)."""
    if not _password(shop):
        return _closed(request)
    try:
        csrf.verify(request, shop.box.mac_key, csrf_token)
    except csrf.CsrfRejected as exc:
        return _login_page(request, shop, status=403, error=exc.message)
    limits = limiter(request)
    client, user = client_id(request), user_key(username)
    try:
        limits.login_attempt(client=client, user=user)
    except LoginLocked as exc:
        if limits.first_lockout(exc):
            _alert_lockout(shop, exc, username=username)
        message = exc.message[0].upper() + exc.message[1:]
        page = _login_page(request, shop, status=429, error=f"{message}.")
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    except ShopError as exc:  # the limits' store is down: refuse rather than allow guessing
        return _login_page(request, shop, status=exc.status, error=exc.message)
    # Both are always checked, so the time taken does not tell which one was wrong; the user
    # names as digests of one length, so it does not tell the operator's name's length either.
    user_ok = hmac.compare_digest(_digest(username), _digest(shop.settings.admin_user))
    pass_ok = passwords.verify(_password(shop), password)
    if not (user_ok and pass_ok):
        return _login_page(
            request,
            shop,
            status=401,
            error="Wrong user name or password. Check them and try again.",
        )
    limits.login_succeeded(client=client, user=user)
    session_id, _ = operators.open_session(
        shop.db,
        fingerprint=_fingerprint(shop),
        client=client,
        now=shop.clock(),
        lifetime_seconds=shop.settings.admin_session_seconds,
        replaces=request.cookies.get(csrf.ADMIN_COOKIE),
    )
    response = RedirectResponse("/admin", status_code=303)
    response.set_cookie(
        csrf.ADMIN_COOKIE,
        session_id,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(shop),
        path="/admin",
        max_age=shop.settings.admin_session_seconds,
    )
    return response


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _alert_lockout(shop: Shop, exc: LoginLocked, *, username: str) -> None:
    """One alert per locked-out client or user name (the attempted name is shown only when
    it is the operator's: anything else may be a password typed into the wrong field)."""
    if exc.scope == "client":
        whom = f"from client {exc.who} (a hash of its address)"
    elif hmac.compare_digest(username.encode(), shop.settings.admin_user.encode()):
        whom = f"for the operator user name {shop.settings.admin_user!r}, from several addresses"
    else:
        whom = "for a user name that is not the operator's, from several addresses"
    operators.alert_login_locked(
        shop.db,
        message=f"Operator login locked {whom}: too many failed attempts; the next one is "
        f"allowed in {exc.retry_after} s. If this was not you, someone is guessing the "
        "password: make sure CHEAPTOKENS_ADMIN_PASSWORD is long and random.",
        now=shop.clock(),
    )


@router.post("/logout")
def logout(request: Request, shop: ShopDep, csrf_token: FormText = "") -> Response:
    """End this browser's session: its cookie opens nothing any more, even if kept."""
    response = operator_action(
        request,
        shop,
        csrf_token,
        action="logout",
        target=None,
        run=lambda db, session: operators.end_session(db, id_hash=session.id_hash),
        done="/admin/login",
        failure_title="Not logged out",
        when_logged_out=RedirectResponse("/admin/login", status_code=303),
    )
    if response.status_code == 303:
        response.delete_cookie(csrf.ADMIN_COOKIE, path="/admin")
    return response


@router.post("/sessions/end-all")
def end_all_sessions(request: Request, shop: ShopDep, csrf_token: FormText = "") -> Response:
    """Log every operator session out, this one included (a lost laptop, a shared screen)."""
    response = operator_action(
        request,
        shop,
        csrf_token,
        action="end_all_sessions",
        target=None,
        run=lambda db, _session: operators.end_all_sessions(db),
        done="/admin/login",
        failure_title="Sessions not ended",
    )
    if response.status_code == 303:
        response.delete_cookie(csrf.ADMIN_COOKIE, path="/admin")
    return response


#: What the dashboard says after an action (``/admin?done=<action>-<target>``).
DONE = {
    "refund": "refund queued for order {}. The worker deletes the key and refunds the payment.",
}


def _done_message(done: str | None) -> str | None:
    if not done:
        return None
    action, _, target = done.partition("-")
    template = DONE.get(action)
    return template.format(target[:64]) if template else None


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, shop: ShopDep, done: str | None = None) -> Response:
    if not _password(shop):
        return _closed(request)
    session = operator_session(request, shop)
    if session is None:
        return RedirectResponse("/admin/login", status_code=303)
    now = shop.clock()
    board = flows.dashboard(db=shop.db, rules=shop.rules, now=now)
    view = board.pricing
    token = csrf.CsrfToken(request, shop.box.mac_key)
    response = render(
        request,
        "admin/dashboard.html",
        csrf_token=token.value,
        done=_done_message(done),
        today=board.today,
        chart=charts.build_chart(
            view.params, now=view.now, remaining_cents=view.unsold_cents, sales=board.sales
        ),
        price_fraction=view.fraction,
        orders=board.orders,
        alerts=board.alerts,
        keys=board.keys,
        past=board.past,
        bars=charts.past_chart(board.past),
        forecast_days=flows.forecast_days(db=shop.db, settings=shop.settings, today=now.date()),
        usd=format_usd,
        session=session,
        sessions=operators.live_sessions(
            shop.db,
            fingerprint=_fingerprint(shop),
            now=now,
            idle_seconds=shop.settings.admin_idle_seconds,
        ),
        actions=operators.recent_actions(shop.db),
    )
    return token.set_cookie(response, secure=secure_cookies(shop))


@router.post("/orders/{order_id}/refund")
def refund(
    order_id: str,
    request: Request,
    shop: ShopDep,
    csrf_token: FormText = "",
    reason: FormText = "",
) -> Response:
    why = (reason or "operator refund")[:200]
    return operator_action(
        request,
        shop,
        csrf_token,
        action="refund",
        target=order_id[:64],
        detail={"reason": why},
        run=lambda db, _session: flows.refund_order(
            db=db, order_id=order_id, reason=why, now=shop.clock()
        ),
        done=f"/admin?done=refund-{order_id}",
        failure_title="Refund not queued",
    )
