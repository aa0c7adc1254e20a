"""The operator's dashboard under ``/admin``, behind a login form.

Credentials come from ``Settings.admin_user`` / ``admin_password``; an empty password keeps
the dashboard closed. The session is an HMAC-signed cookie (see :mod:`cheaptokens.web.csrf`)
and every form carries a CSRF token. The figures come from
:func:`cheaptokens.orders.flows.dashboard`, and the key counts from Venice.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cheaptokens import operators, passwords
from cheaptokens.errors import ShopError
from cheaptokens.money import format_usd
from cheaptokens.orders import flows
from cheaptokens.shop import Shop
from cheaptokens.venice.keys import count_keys
from cheaptokens.web import charts, csrf
from cheaptokens.web.deps import ShopDep, client_id, limiter
from cheaptokens.web.limits import LoginLocked, user_key
from cheaptokens.web.pages import FormText, html_error, secure_cookies
from cheaptokens.web.render import render

router = APIRouter(prefix="/admin", include_in_schema=False)


def _password(shop: Shop) -> str:
    return shop.settings.admin_password.get_secret_value()


def _closed(request: Request) -> HTMLResponse:
    return html_error(
        request,
        status=503,
        title="The dashboard is closed",
        message="No operator password is configured. Set CHEAPTOKENS_ADMIN_PASSWORD (and "
        "optionally CHEAPTOKENS_ADMIN_USER) and restart the shop to open it.",
    )


def logged_in(request: Request, shop: Shop) -> bool:
    return bool(_password(shop)) and csrf.admin_session_valid(
        shop.box.mac_key, shop.settings.admin_user, request.cookies.get(csrf.ADMIN_COOKIE)
    )


def _login_page(request: Request, shop: Shop, *, status: int = 200, error: str = "") -> Response:
    token = csrf.CsrfToken(request, shop.box.mac_key)
    response = render(
        request, "admin/login.html", status_code=status, csrf_token=token.value, error=error
    )
    return token.set_cookie(response, secure=secure_cookies(shop))


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
    whatever the password, and the dashboard gets an alert."""
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
        page = _login_page(
            request, shop, status=429, error=f"Too many failed logins: {exc.message}."
        )
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    except ShopError as exc:  # the limits' store is down: refuse rather than allow guessing
        return _login_page(request, shop, status=exc.status, error=exc.message)
    # Both are always checked, so the time taken does not tell which one was wrong.
    user_ok = hmac.compare_digest(username.encode(), shop.settings.admin_user.encode())
    pass_ok = passwords.verify(_password(shop), password)
    if not (user_ok and pass_ok):
        return _login_page(
            request,
            shop,
            status=401,
            error="Wrong user name or password. Check them and try again.",
        )
    limits.login_succeeded(client=client, user=user)
    response = RedirectResponse("/admin", status_code=303)
    response.set_cookie(
        csrf.ADMIN_COOKIE,
        csrf.admin_cookie_value(shop.box.mac_key, shop.settings.admin_user),
        httponly=True,
        samesite="strict",
        secure=secure_cookies(shop),
        path="/admin",
        max_age=csrf.ADMIN_SESSION_SECONDS,
    )
    return response


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
    try:
        csrf.verify(request, shop.box.mac_key, csrf_token)
    except csrf.CsrfRejected as exc:
        return html_error(
            request,
            status=403,
            title="Form expired",
            message=exc.message,
            next_href="/admin",
            next_label="Back to the dashboard",
        )
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(csrf.ADMIN_COOKIE, path="/admin")
    return response


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, shop: ShopDep, done: str | None = None) -> Response:
    if not _password(shop):
        return _closed(request)
    if not logged_in(request, shop):
        return RedirectResponse("/admin/login", status_code=303)
    now = shop.clock()
    board = flows.dashboard(db=shop.db, rules=shop.rules, now=now)
    view = board.pricing
    token = csrf.CsrfToken(request, shop.box.mac_key)
    response = render(
        request,
        "admin/dashboard.html",
        csrf_token=token.value,
        done=done,
        today=board.today,
        chart=charts.build_chart(
            view.params, now=view.now, remaining_cents=view.unsold_cents, sales=board.sales
        ),
        price_fraction=view.fraction,
        orders=board.orders,
        alerts=board.alerts,
        keys=count_keys(shop.gateways, now=now),
        past=board.past,
        bars=charts.past_chart(board.past),
        usd=format_usd,
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
    if not _password(shop):
        return _closed(request)
    if not logged_in(request, shop):
        return html_error(
            request,
            status=401,
            title="Please log in",
            message="Your operator session has ended. Log in and try again.",
            next_href="/admin/login",
            next_label="Log in",
        )
    try:
        csrf.verify(request, shop.box.mac_key, csrf_token)
        flows.refund_order(
            db=shop.db,
            order_id=order_id,
            reason=(reason or "operator refund")[:200],
            now=shop.clock(),
        )
    except ShopError as exc:
        return html_error(
            request,
            status=exc.status,
            title="Refund not queued",
            message=exc.message,
            next_href="/admin",
            next_label="Back to the dashboard",
        )
    return RedirectResponse(f"/admin?done=refund-{order_id}", status_code=303)
