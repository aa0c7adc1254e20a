"""The buyer's HTML pages: the buy page, the order/key page and the docs under ``/docs/``.

Everything is server-rendered; ``/static/home.js`` and ``/static/order.js`` add live prices,
the quote countdown and the key/usage panel (the CSP allows only same-origin scripts).
Without JavaScript the buy form still works: ``POST /buy`` places the order, keeps the
order token in an HttpOnly cookie scoped to that order's page, and redirects to checkout.

Order tokens never travel in a query or a path: the JavaScript page reads them from the
URL fragment (``/orders/{id}#token=...``) or sessionStorage and sends them as a bearer
header; the no-JavaScript page reads the cookie.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cheaptokens.errors import HeldOut, InvalidInput, NotFound, ShopError, SoldOut
from cheaptokens.inventory import Capacity
from cheaptokens.models import Order, Topup
from cheaptokens.money import format_usd
from cheaptokens.orders import events, flows, transitions
from cheaptokens.orders import state as st
from cheaptokens.shop import Shop
from cheaptokens.times import iso_z, next_midnight
from cheaptokens.web import charts, csrf
from cheaptokens.web.deps import ShopDep, client_id, limiter, place_order
from cheaptokens.web.pricehistory import history_out
from cheaptokens.web.render import HERE, render, templates

router = APIRouter(include_in_schema=False)
#: A form field; a missing one is empty (the handler then says what is wrong, as a page).
FormText = Annotated[str, Form()]

PRESETS_DOLLARS = (1, 5, 10, 25)
ORDER_COOKIE = "ct_order"
SAMPLES_DIR = HERE / "templates" / "docs" / "samples"
#: What the docs show instead of a real key (obviously fake; order.js swaps in the real one).
PLACEHOLDER_KEY = "VENICE_INFERENCE_KEY_your_key_here"

DOCS: tuple[tuple[str, str], ...] = (
    ("", "Overview"),
    ("getting-started", "Getting started"),
    ("how-it-works", "How it works"),
    ("authentication", "Authentication"),
    ("base-url", "Base URL and set-up"),
    ("chat-completions", "Chat completions"),
    ("models", "Models and prices"),
    ("streaming", "Streaming"),
    ("rate-limits", "Rate limits"),
    ("errors", "Error codes"),
    ("key-expiry", "Key expiry"),
    ("top-up", "Top up"),
    ("lost-key", "Lost your key"),
    ("alerts", "Alerts"),
    ("api", "JSON API for agents"),
    ("agents", "Agents: pay with x402"),
    ("faq", "FAQ"),
)


# ------------------------------------------------------------------------------ helpers
def html_error(
    request: Request,
    *,
    status: int,
    title: str,
    message: str,
    next_href: str = "/",
    next_label: str = "Back to the shop",
) -> HTMLResponse:
    """An error page that says what happened and what to do next."""
    return render(
        request,
        "error.html",
        status_code=status,
        title=title,
        message=message,
        next_href=next_href,
        next_label=next_label,
    )


def secure_cookies(shop: Shop) -> bool:
    return shop.settings.public_url.startswith("https://")


def sample(name: str, *, api_key: str, base_url: str, shop_url: str = "") -> str:
    """A docs sample with its placeholders filled in (the files are what the tests run)."""
    text = (SAMPLES_DIR / name).read_text(encoding="utf-8")
    return (
        text.replace("__API_KEY__", api_key)
        .replace("__BASE_URL__", base_url)
        .replace("__SHOP_URL__", shop_url)
        .rstrip("\n")
    )


def samples_for(shop: Shop, *, api_key: str = PLACEHOLDER_KEY) -> dict[str, str]:
    names = sorted(p.name for p in SAMPLES_DIR.iterdir() if p.is_file())
    return {
        n.replace(".", "_"): sample(
            n, api_key=api_key, base_url=shop.buyer_base_url, shop_url=shop.settings.public_url
        )
        for n in names
    }


def _expiry_text(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


# ------------------------------------------------------------------------------- home
def _home_context(shop: Shop) -> dict[str, Any]:
    front = flows.storefront(db=shop.db, rules=shop.rules, now=shop.clock())
    view = front.pricing
    per_dollar = (view.fraction * view.params.list_cents).quantize(Decimal("0.01"))
    chart = charts.build_chart(
        view.params, now=view.now, remaining_cents=view.unsold_cents, sales=front.sales
    )
    midnight = next_midnight(view.now)
    return {
        "now": view.now,
        "now_iso": iso_z(view.now),
        "price_cents": format(per_dollar, "f"),
        # As GET /api/pricing and a quote's discount_percent give it (home.js shows those).
        "discount_percent": format((view.discount * 100).quantize(Decimal("0.01")), "f"),
        "remaining": format_usd(view.remaining_cents),
        "remaining_cents": view.remaining_cents,
        "sold": format_usd(view.sold_cents),
        "held": format_usd(view.reserved_cents),
        "capacity": format_usd(view.capacity_cents),
        "made_of": capacity_note(shop, front.capacity),
        "sold_out": view.unsold_cents < shop.rules.min_order_cents,
        # Only held out: unpaid quotes and checkouts hold what is left; some may lapse.
        "held_out": view.unsold_cents >= shop.rules.min_order_cents > view.remaining_cents,
        "holds_end": _expiry_text(front.holds_end) if front.holds_end else None,
        "withheld": format_usd(view.withheld_cents) if view.withheld_cents else None,
        "midnight_iso": iso_z(midnight),
        "seconds_left": int((midnight - view.now).total_seconds()),
        "chart": chart,
        "presets": PRESETS_DOLLARS,
        "min_cents": shop.rules.min_order_cents,
        "max_order_cents": shop.rules.max_order_cents,
        "min_dollars": format_usd(shop.rules.min_order_cents),
        "max_dollars": format_usd(min(shop.rules.max_order_cents, max(0, view.remaining_cents))),
        "quote_ttl": shop.settings.quote_ttl_seconds,
    }


def capacity_note(shop: Shop, made: Capacity) -> dict[str, Any]:
    """Why today's capacity is what it is, in the words of the home page:
    allocation × sell fraction − safety margin (``inventory.day_capacity``, per account)."""
    percent = (shop.rules.sell_fraction * 100).normalize()
    return {
        "accounts": made.accounts,
        "allocation": format_usd(made.allocation_cents),
        "diem": format((Decimal(made.allocation_cents) / 100).normalize(), "f"),
        "percent": format(percent, "f"),
        "sellable": format_usd(made.sellable_cents),
        "margin": format_usd(made.margin_cents),
        "capacity": format_usd(made.capacity_cents),
    }


def _page(request: Request, shop: Shop, name: str, status: int = 200, **ctx: Any) -> Response:
    token = csrf.CsrfToken(request, shop.box.mac_key)
    response = render(request, name, status_code=status, csrf_token=token.value, **ctx)
    return token.set_cookie(response, secure=secure_cookies(shop))


@router.get("/", response_class=HTMLResponse)
def home(
    request: Request, shop: ShopDep, cancelled: str | None = None, amount: str | None = None
) -> Response:
    notice = None
    if cancelled:
        notice = "Checkout was cancelled: nothing was charged. Pick an amount to try again."
    return _page(
        request, shop, "home.html", notice=notice, picked=picked(amount), **_home_context(shop)
    )


@router.get("/pricing/history", response_class=HTMLResponse)
def pricing_history_page(request: Request, shop: ShopDep) -> Response:
    """Past days' published curves, sell-outs and parameter sets (GET /api/pricing/history)."""
    days = flows.pricing_history(db=shop.db, today=shop.clock().date(), days=14)
    return _page(
        request,
        shop,
        "pricing_history.html",
        days=[d.model_dump() for d in history_out(days).days],
        usd=format_usd,
    )


def picked(amount: str | None) -> dict[str, str]:
    """The amount to preselect on the buy form (``/?amount=5.00``, from "Try again"): one of
    the presets, or the custom field filled in; anything unreadable preselects the default."""
    default = {"preset": "5", "custom": ""}
    if not amount:
        return default
    try:
        cents = parse_dollars("custom", amount[:20])
    except InvalidInput:
        return default
    if cents % 100 == 0 and cents // 100 in PRESETS_DOLLARS:
        return {"preset": str(cents // 100), "custom": ""}
    return {"preset": "custom", "custom": f"{cents // 100}.{cents % 100:02d}"}


def parse_dollars(choice: str, custom: str) -> int:
    """The amount in cents from the form's preset choice or custom dollar field."""
    raw = custom.strip() if choice == "custom" or (not choice and custom.strip()) else choice
    raw = raw.strip().lstrip("$").replace(",", "")
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise InvalidInput("enter an amount in dollars, like 5 or 12.50", field="amount") from None
    if not amount.is_finite() or amount <= 0:
        raise InvalidInput("enter an amount in dollars above zero", field="amount")
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise InvalidInput("use whole cents, like 12.50", field="amount")
    return int(cents)


@router.post("/buy")
def buy(
    request: Request,
    shop: ShopDep,
    csrf_token: FormText = "",
    amount: FormText = "",
    custom: FormText = "",
) -> Response:
    """The no-JavaScript purchase: quote and order in one go, then off to checkout."""
    try:
        csrf.verify(request, shop.box.mac_key, csrf_token)
        cents = parse_dollars(amount, custom)
        limiter(request).check("order", client_id(request), shop.settings.orders_per_minute)
        placed = _place(shop, cents, client_id(request))
    except ShopError as exc:
        return _buy_error(request, shop, exc)
    order = placed.order
    if not order.checkout_url:
        return html_error(
            request,
            status=503,
            title="Checkout is not available",
            message="The payment page could not be opened; nothing was charged. Try again.",
        )
    response = RedirectResponse(order.checkout_url, status_code=303)
    response.set_cookie(
        ORDER_COOKIE,
        placed.token,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(shop),
        path=f"/orders/{order.id}",
        max_age=2 * 86_400,
    )
    return response


def _place(shop: Shop, cents: int, client: str) -> transitions.Placed:
    quote = flows.new_quote(
        db=shop.db, rules=shop.rules, credit_cents=cents, now=shop.clock(), client=client
    )
    return place_order(
        shop,
        quote_id=quote.id,
        credit_cents=None,
        idempotency_key=None,
        client=client,
    )


def _buy_error(request: Request, shop: Shop, exc: ShopError) -> Response:
    if isinstance(exc, csrf.CsrfRejected):
        return html_error(
            request,
            status=403,
            title="This form has expired",
            message=exc.message,
            next_label="Reload the shop",
        )
    context = _home_context(shop)
    message = amount_error(exc, context) or exc.message
    status = exc.status if 400 <= exc.status < 600 else 400
    return _page(request, shop, "home.html", status, error=message, **context)


def amount_error(exc: ShopError, context: dict[str, Any]) -> str | None:
    """An amount out of range, in the dollars and bounds of the form's own label (the
    service's message is in cents and knows only the order limits, not what is left)."""
    if isinstance(exc, HeldOut):
        return (
            f"Only {context['remaining']} of credit is free right now: enter an amount from "
            f"{context['min_dollars']} to {context['max_dollars']}. The rest is held by open "
            f"checkouts not paid yet; some may come back by {_expiry_text(exc.returns_at)}."
        )
    if isinstance(exc, SoldOut):
        if context["sold_out"]:
            return (
                f"Today's credit is sold out. New credit comes at "
                f"{_expiry_text(exc.returns_at)}; come back then."
            )
        return (
            f"Only {context['remaining']} of credit is left today: enter an amount from "
            f"{context['min_dollars']} to {context['max_dollars']}."
        )
    if isinstance(exc, InvalidInput) and exc.field == "credit_cents":
        return f"Enter an amount from {context['min_dollars']} to {context['max_dollars']}."
    return None


# --------------------------------------------------------------------------- order page
@dataclass(frozen=True, slots=True)
class OrderView:
    """What the no-JavaScript order page shows (the JavaScript page fetches the API)."""

    order: Order
    api_key: str | None
    usage: flows.Usage | None
    topups: list[Topup]
    deliveries: events.DeliveryLog | None = None


def _order_from_cookie(request: Request, shop: Shop, order_id: str) -> OrderView | None:
    token = request.cookies.get(ORDER_COOKIE)
    if not token:
        return None
    try:
        order = flows.order_for(db=shop.db, order_id=order_id, token=token)
    except NotFound:
        return None
    key = flows.reveal_key(box=shop.box, order=order) if order.status == st.FULFILLED else None
    use = None
    if order.status in (st.FULFILLED, st.EXPIRED):
        use = flows.usage(
            db=shop.db, gateways=shop.gateways, order_id=order_id, token=token, now=shop.clock()
        )
    log = flows.deliveries(db=shop.db, order_id=order_id, token=token)
    return OrderView(order, key, use, flows.topups_of(db=shop.db, order_id=order_id), log)


@router.get("/orders/{order_id}", response_class=HTMLResponse)
def order_page(
    order_id: str, request: Request, shop: ShopDep, checkout: str | None = None
) -> Response:
    if len(order_id) > 40:
        return html_error(
            request,
            status=404,
            title="No such order",
            message="This order link is not valid. Check that you copied the whole link.",
        )
    view = _order_from_cookie(request, shop, order_id)
    api_key = view.api_key if view and view.api_key else PLACEHOLDER_KEY
    return _page(
        request,
        shop,
        "order.html",
        order_id=order_id,
        view=view,
        checkout=checkout,
        base_url=shop.buyer_base_url,
        placeholder_key=PLACEHOLDER_KEY,
        samples=samples_for(shop, api_key=api_key),
        format_usd=format_usd,
        event_detail=event_detail,
    )


def event_detail(data: dict[str, Any]) -> str:
    """What the delivery log adds after an event's type: its threshold or stage."""
    if "threshold" in data:
        return f" {data['threshold']} %"
    if "minutes" in data:
        return f" {data['minutes']} min"
    if "stage" in data:
        return f" {data['stage']}"
    return ""


@router.post("/orders/{order_id}/received")
def order_received(
    order_id: str, request: Request, shop: ShopDep, csrf_token: FormText = ""
) -> Response:
    """The no-JavaScript "I saved it" button (the JavaScript page calls the JSON API)."""
    token = request.cookies.get(ORDER_COOKIE, "")
    try:
        csrf.verify(request, shop.box.mac_key, csrf_token)
        flows.confirm_receipt(db=shop.db, order_id=order_id, token=token, now=shop.clock())
    except csrf.CsrfRejected as exc:
        return html_error(
            request,
            status=403,
            title="This form has expired",
            message=exc.message,
            next_href=f"/orders/{order_id}",
            next_label="Back to your order",
        )
    except ShopError as exc:
        return html_error(
            request,
            status=exc.status,
            title="Could not confirm",
            message=exc.message,
            next_href=f"/orders/{order_id}",
            next_label="Back to your order",
        )
    return RedirectResponse(f"/orders/{order_id}", status_code=303)


def _back_with_error(request: Request, order_id: str, title: str, exc: ShopError) -> Response:
    return html_error(
        request,
        status=exc.status,
        title=title,
        message=exc.message,
        next_href=f"/orders/{order_id}",
        next_label="Back to your order",
    )


@router.post("/orders/{order_id}/topup")
def order_topup(
    order_id: str,
    request: Request,
    shop: ShopDep,
    csrf_token: FormText = "",
    amount: FormText = "",
) -> Response:
    """The no-JavaScript top-up: to the provider's checkout for more credit on the same key."""
    token = request.cookies.get(ORDER_COOKIE, "")
    try:
        csrf.verify(request, shop.box.mac_key, csrf_token)
        cents = parse_dollars("custom", amount)
        limiter(request).check("order", client_id(request), shop.settings.orders_per_minute)
        placed = flows.new_topup(
            db=shop.db,
            rules=shop.rules,
            payments=shop.payments,
            public_url=shop.settings.public_url,
            clock=shop.clock,
            order_id=order_id,
            token=token,
            credit_cents=cents,
            idempotency_key=None,
            client=client_id(request),
        )
    except ShopError as exc:
        return _back_with_error(request, order_id, "Could not top up", exc)
    if not placed.topup.checkout_url:
        return html_error(
            request,
            status=503,
            title="Checkout is not available",
            message="The payment page could not be opened; nothing was charged. Try again.",
            next_href=f"/orders/{order_id}",
            next_label="Back to your order",
        )
    return RedirectResponse(placed.topup.checkout_url, status_code=303)


@router.post("/orders/{order_id}/reissue")
def order_reissue(
    order_id: str, request: Request, shop: ShopDep, csrf_token: FormText = ""
) -> Response:
    """The no-JavaScript "Get a new key": the old key is deleted first, then a new one made."""
    token = request.cookies.get(ORDER_COOKIE, "")
    try:
        csrf.verify(request, shop.box.mac_key, csrf_token)
        limiter(request).check("reissue", client_id(request), shop.settings.orders_per_minute)
        flows.reissue(db=shop.db, order_id=order_id, token=token, now=shop.clock())
    except ShopError as exc:
        return _back_with_error(request, order_id, "Could not make a new key", exc)
    return RedirectResponse(f"/orders/{order_id}", status_code=303)


# ---------------------------------------------------------------------------------- agents
def agent_context(shop: Shop) -> dict[str, Any]:
    s = shop.settings
    return {
        "shop_url": s.public_url,
        "base_url": shop.buyer_base_url,
        "network": s.x402_network,
        "pay_to": s.x402_pay_to,
        "quote_ttl": s.quote_ttl_seconds,
        "siwx_seconds": s.siwx_seconds,
        "min_order": format_usd(shop.rules.min_order_cents),
        "max_order": format_usd(shop.rules.max_order_cents),
    }


def _agent_text(shop: Shop, name: str, media_type: str) -> Response:
    template = templates.env.get_template(f"agents/{name}")
    return Response(template.render(**agent_context(shop)), media_type=media_type)


@router.get("/SKILL.md")
def skill_md(shop: ShopDep) -> Response:
    """How an agent buys, uses and re-issues a key (an agent skill, Markdown)."""
    return _agent_text(shop, "SKILL.md", "text/markdown; charset=utf-8")


@router.get("/llms.txt")
def llms_txt(shop: ShopDep) -> Response:
    return _agent_text(shop, "llms.txt", "text/plain; charset=utf-8")


# ---------------------------------------------------------------------------------- docs
@router.get("/docs", response_class=HTMLResponse)
def docs_root() -> Response:
    return RedirectResponse("/docs/", status_code=308)


@router.get("/docs/{slug:path}", response_class=HTMLResponse)
def docs_page(slug: str, request: Request, shop: ShopDep) -> Response:
    slug = slug.strip("/")
    titles = dict(DOCS)
    if slug not in titles:
        return html_error(
            request,
            status=404,
            title="No such docs page",
            message="That page does not exist. The docs index lists every topic.",
            next_href="/docs/",
            next_label="Go to the docs index",
        )
    now = shop.clock()
    ctx: dict[str, Any] = {
        "docs": DOCS,
        "slug": slug,
        "title": titles[slug],
        "base_url": shop.buyer_base_url,
        "shop_url": shop.settings.public_url,
        "samples": samples_for(shop),
        "placeholder_key": PLACEHOLDER_KEY,
        "example_bought": "2026-11-25 18:30 UTC",
        "example_expires": "2026-11-26 00:00 UTC",
        "next_midnight": _expiry_text(next_midnight(now)),
        "min_order": format_usd(shop.rules.min_order_cents),
        "max_order": format_usd(shop.rules.max_order_cents),
        "quote_ttl": shop.settings.quote_ttl_seconds,
        "checkout_minutes": shop.settings.checkout_ttl_seconds // 60,
        "provision_minutes": shop.settings.provision_deadline_seconds // 60,
        "venice_mode": shop.settings.venice_mode,
        **agent_context(shop),
    }
    if slug == "models":
        ctx["models"] = shop.catalogue.text_models()
    template = f"docs/{slug or 'index'}.html"
    return render(request, template, **ctx)
