"""The operator's dashboard under ``/admin``, behind a login form.

Credentials come from ``Settings.admin_user`` / ``admin_password``; an empty password keeps
the dashboard closed. The session is an HMAC-signed cookie (see :mod:`cheaptokens.web.csrf`)
and every form carries a CSRF token. All figures come from :mod:`cheaptokens.reports`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cheaptokens import reports
from cheaptokens.errors import ShopError
from cheaptokens.money import format_usd
from cheaptokens.orders import flows
from cheaptokens.shop import Shop
from cheaptokens.web import csrf
from cheaptokens.web.deps import get_shop
from cheaptokens.web.pages import html_error, secure_cookies
from cheaptokens.web.render import render

router = APIRouter(prefix="/admin", include_in_schema=False)
ShopDep = Annotated[Shop, Depends(get_shop)]


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
async def login(request: Request) -> Response:
    shop: Shop = request.app.state.shop
    if not _password(shop):
        return _closed(request)
    form = await request.form()
    try:
        csrf.verify(request, shop.box.mac_key, form.get(csrf.CSRF_FIELD))
    except csrf.CsrfRejected as exc:
        return _login_page(request, shop, status=403, error=exc.message)
    user_ok = str(form.get("username", "")) == shop.settings.admin_user
    pass_ok = csrf.password_matches(_password(shop), str(form.get("password", "")))
    if not (user_ok and pass_ok):
        return _login_page(
            request,
            shop,
            status=401,
            error="Wrong user name or password. Check them and try again.",
        )
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


@router.post("/logout")
async def logout(request: Request) -> Response:
    shop: Shop = request.app.state.shop
    form = await request.form()
    try:
        csrf.verify(request, shop.box.mac_key, form.get(csrf.CSRF_FIELD))
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
    view = flows.pricing_now(shop)
    today = reports.today(shop)
    past = reports.past_days(shop)
    token = csrf.CsrfToken(request, shop.box.mac_key)
    response = render(
        request,
        "admin/dashboard.html",
        csrf_token=token.value,
        done=done,
        today=today,
        chart=reports.build_chart(
            view.params,
            now=view.now,
            remaining_cents=view.remaining_cents,
            sales=reports.sales_on(shop, view.now.date()),
        ),
        price_fraction=view.fraction,
        orders=reports.recent_orders(shop),
        alerts=reports.recent_alerts(shop),
        keys=reports.key_counts(shop),
        past=past,
        bars=reports.past_chart(past),
        usd=format_usd,
    )
    return token.set_cookie(response, secure=secure_cookies(shop))


@router.post("/orders/{order_id}/refund")
async def refund(order_id: str, request: Request) -> Response:
    shop: Shop = request.app.state.shop
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
    form = await request.form()
    try:
        csrf.verify(request, shop.box.mac_key, form.get(csrf.CSRF_FIELD))
        reason = str(form.get("reason") or "operator refund")[:200]
        await run_in_threadpool(reports.refund_order, shop, order_id=order_id, reason=reason)
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
