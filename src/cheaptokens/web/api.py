"""The public JSON API (``/api/...``). Amounts are integer cents; times are UTC ISO-8601.

Handlers parse, call one use case from :mod:`cheaptokens.orders.flows`, and render.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from cheaptokens.errors import InvalidInput, NotFound
from cheaptokens.models import Order, Quote
from cheaptokens.orders import flows, published
from cheaptokens.orders import state as st
from cheaptokens.pricing.curve import next_midnight, params_to_dict, price_fraction
from cheaptokens.shop import Shop
from cheaptokens.web.deps import client_id, get_shop, limiter
from cheaptokens.web.errors import documented
from cheaptokens.web.pricecache import PriceCache

router = APIRouter(prefix="/api", tags=["shop"])


def iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuoteIn(Strict):
    credit_cents: StrictInt = Field(description="Credit to buy, in cents ($1 = 100).")


# Ids are printable ASCII: anything else cannot be one of ours, and a NUL would not even
# reach PostgreSQL (it refuses NUL in text), so refuse it here with a clear 422.
ID_PATTERN = r"^[!-~]{1,64}$"


class OrderIn(Strict):
    quote_id: StrictStr | None = Field(default=None, pattern=ID_PATTERN)
    credit_cents: StrictInt | None = None


class PricingOut(BaseModel):
    now: str
    list_cents_per_dollar: int
    price_cents_per_dollar: str = Field(description="Price of $1 of credit, in cents (decimal).")
    price_fraction: str
    discount: str
    discount_percent: str
    remaining_cents: int
    key_expires_at: str
    next_change_at: str
    params_hash: str
    params: dict[str, Any]
    formula: str


class SupplyOut(BaseModel):
    day: str
    capacity_cents: int
    sold_cents: int
    reserved_cents: int
    remaining_cents: int
    sold_out: bool
    returns_at: str | None


class QuoteOut(BaseModel):
    quote_id: str
    credit_cents: int
    price_cents: int
    price_cents_per_dollar: str = Field(
        description="The rate the quote was priced at: the price of $1 of credit in cents "
        "(decimal), as GET /api/pricing gave it at created_at before this quote."
    )
    discount_percent: str = Field(
        description="1 − that rate / list, in percent with 2 decimals: the same number as "
        "GET /api/pricing's discount_percent. price_cents = floor(credit_cents × rate / 100) "
        "is rounded down, so price_cents / credit_cents can be a little lower."
    )
    valid_until: str
    key_expires_at: str
    params_hash: str
    remaining_cents: int
    created_at: str


class OrderOut(BaseModel):
    order_id: str
    order_token: str
    status: str
    credit_cents: int
    price_cents: int
    checkout_url: str | None
    checkout_expires_at: str
    order_url: str


class KeyOut(BaseModel):
    api_key: str | None = Field(description="The key, until the buyer confirms receipt.")
    last6: str | None
    credit_cents: int = Field(
        description="The key's spending cap in cents: the credit bought (its Venice DIEM limit "
        "× 100)."
    )
    base_url: str
    expires_at: str | None


class OrderStatusOut(BaseModel):
    order_id: str
    status: str
    credit_cents: int
    price_cents: int
    created_at: str
    paid_at: str | None
    checkout_url: str | None
    key: KeyOut | None
    base_url: str
    expires_at: str | None
    message: str


class UsageOut(BaseModel):
    order_id: str
    credit_cents: int
    used_cents: int
    remaining_cents: int
    expires_at: str | None
    seconds_left: int
    checked_at: str | None
    live: bool


FORMULA = (
    "price per $1 = list × clamp((a + b·g(h)) × (X̂(t)/x)^β, floor, 1); "
    "g(h) = (1 − e^(−h/6)) / (1 − e^(−4)); h = hours to 00:00 UTC; x = credit unsold; "
    "X̂(t) = capacity × plan(t), plan linear between hours; buyer pays floor(cents × price)"
)

ShopDep = Annotated[Shop, Depends(get_shop)]
OrderId = Annotated[str, Path(pattern=ID_PATTERN, description="The order's id (ord_...).")]


def bearer(authorization: Annotated[str | None, Header()] = None) -> str:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise NotFound(
            "send the order token as 'Authorization: Bearer <order_token>'", field="Authorization"
        )
    return authorization[7:].strip()


@router.get("/pricing", response_model=PricingOut)
async def get_pricing(request: Request) -> Response:
    """The live price per $1 of credit, its discount and the published parameters in force
    (recomputed at most once a second per server process; ``now`` says when)."""
    cache: PriceCache = request.app.state.price_cache
    return Response(await cache.get(), media_type="application/json")


def percent(discount: Decimal) -> str:
    """A discount as the API and the pages show it: percent, 2 decimals (half-even)."""
    return format((discount * 100).quantize(Decimal("0.01")), "f")


def pricing(shop: Shop) -> PricingOut:
    view = flows.pricing_now(shop)
    fraction = view.fraction
    per_dollar = (fraction * view.params.list_cents).normalize()
    return PricingOut(
        now=iso(view.now) or "",
        list_cents_per_dollar=view.params.list_cents,
        price_cents_per_dollar=format(per_dollar, "f"),
        price_fraction=str(fraction),
        discount=str(view.discount),
        discount_percent=percent(view.discount),
        remaining_cents=view.remaining_cents,
        key_expires_at=iso(next_midnight(view.now)) or "",
        next_change_at=iso(view.params.valid_until) or "",
        params_hash=view.params_hash,
        params=params_to_dict(view.params),
        formula=FORMULA,
    )


@router.get("/pricing/params/{params_hash}", responses=documented(404, 422))
def pricing_params(
    params_hash: Annotated[str, Path(pattern=r"^[0-9a-f]{1,64}$")], shop: ShopDep
) -> dict[str, Any]:
    """A published parameter set, to recompute any quote made with it."""
    return flows.params_body(shop, params_hash)


@router.get("/supply", response_model=SupplyOut)
def supply(shop: ShopDep) -> SupplyOut:
    view = flows.pricing_now(shop)
    sold_out = view.remaining_cents < shop.rules.min_order_cents
    return SupplyOut(
        day=view.now.date().isoformat(),
        capacity_cents=view.capacity_cents,
        sold_cents=view.sold_cents,
        reserved_cents=view.reserved_cents,
        remaining_cents=view.remaining_cents,
        sold_out=sold_out,
        returns_at=iso(next_midnight(view.now)) if sold_out else None,
    )


def quote_rate(shop: Shop, quote: Quote) -> tuple[str, str]:
    """The rate a quote was priced at (price per $1 in cents, discount in percent): the
    published curve at the quote's time and unsold credit, as docs/pricing.md recomputes it."""
    with shop.readonly() as session:
        params = published.by_hash(session, quote.params_hash)
    if params is None:  # the quote's own transaction published it
        raise RuntimeError("a quote's parameter set is missing")
    fraction = price_fraction(params, now=quote.created_at, remaining_cents=quote.remaining_cents)
    per_dollar = (fraction * params.list_cents).normalize()
    return format(per_dollar, "f"), percent(1 - fraction)


@router.post(
    "/quotes",
    response_model=QuoteOut,
    status_code=201,
    responses=documented(400, 409, 413, 422, 429),
)
def create_quote(body: QuoteIn, request: Request, shop: ShopDep) -> QuoteOut:
    limiter(request).check("quote", client_id(request), shop.settings.quotes_per_minute)
    quote = flows.new_quote(shop, credit_cents=body.credit_cents)
    per_dollar, discount_percent = quote_rate(shop, quote)
    return QuoteOut(
        quote_id=quote.id,
        credit_cents=quote.credit_cents,
        price_cents=quote.price_cents,
        price_cents_per_dollar=per_dollar,
        discount_percent=discount_percent,
        valid_until=iso(quote.valid_until) or "",
        key_expires_at=iso(next_midnight(quote.created_at)) or "",
        params_hash=quote.params_hash,
        remaining_cents=quote.remaining_cents,
        created_at=iso(quote.created_at) or "",
    )


@router.post(
    "/orders",
    response_model=OrderOut,
    status_code=201,
    responses=documented(400, 404, 409, 413, 422, 429, 503),
)
def create_order(
    body: OrderIn,
    request: Request,
    shop: ShopDep,
    idempotency_key: Annotated[str | None, Header(pattern=r"^[ -~]{1,200}$")] = None,
) -> OrderOut:
    limiter(request).check("order", client_id(request), shop.settings.orders_per_minute)
    if body.quote_id is None and body.credit_cents is None:
        raise InvalidInput(
            "send quote_id (from POST /api/quotes) or credit_cents", field="quote_id"
        )
    placed = flows.new_order(
        shop,
        quote_id=body.quote_id,
        credit_cents=body.credit_cents,
        idempotency_key=idempotency_key,
        client=client_id(request),
    )
    o = placed.order
    return OrderOut(
        order_id=o.id,
        order_token=placed.token,
        status=o.status,
        credit_cents=o.credit_cents,
        price_cents=o.price_cents,
        checkout_url=o.checkout_url,
        checkout_expires_at=iso(o.checkout_expires_at) or "",
        order_url=f"{shop.settings.public_url}/orders/{o.id}#token={placed.token}",
    )


MESSAGES = {
    st.AWAITING_PAYMENT: "Waiting for payment at checkout_url.",
    st.PAID: "Paid. Your key is being created; poll again in a second.",
    st.FULFILLED: "Your key is ready. Save it now: once you confirm receipt it is not shown again.",
    st.EXPIRED: "The key expired at 00:00 UTC.",
    st.REFUNDED: "The order was refunded; no key is live for it.",
    st.FAILED: "The key could not be made and the refund failed; the operator has been alerted.",
    st.CANCELLED: "The checkout was declined or expired; nothing was charged.",
}
#: A fulfilled order whose buyer confirmed receipt: the key is no longer shown.
RECEIVED_MESSAGE = (
    "You saved your key: the shop no longer has it and shows only its last six characters "
    "(key.last6). It works until it expires at 00:00 UTC."
)


def message_for(order: Order) -> str:
    """``message`` of an order: per status, and whether the buyer has saved the key."""
    if order.status == st.FULFILLED and order.key_received_at is not None:
        return RECEIVED_MESSAGE
    return MESSAGES.get(order.status, "")


@router.get("/orders/{order_id}", response_model=OrderStatusOut, responses=documented(404, 422))
def get_order(
    order_id: OrderId, shop: ShopDep, token: Annotated[str, Depends(bearer)]
) -> OrderStatusOut:
    order = flows.order_for(shop, order_id=order_id, token=token)
    key = None
    if order.key_id is not None and order.status in (st.FULFILLED, st.EXPIRED):
        key = KeyOut(
            api_key=flows.reveal_key(shop, order) if order.status == st.FULFILLED else None,
            last6=order.key_last6,
            credit_cents=order.credit_cents,
            base_url=shop.buyer_base_url,
            expires_at=iso(order.key_expires_at),
        )
    return OrderStatusOut(
        order_id=order.id,
        status=order.status,
        credit_cents=order.credit_cents,
        price_cents=order.price_cents,
        created_at=iso(order.created_at) or "",
        paid_at=iso(order.paid_at),
        checkout_url=order.checkout_url if order.status == st.AWAITING_PAYMENT else None,
        key=key,
        base_url=shop.buyer_base_url,
        expires_at=iso(order.key_expires_at),
        message=message_for(order),
    )


@router.post(
    "/orders/{order_id}/received",
    response_model=OrderStatusOut,
    responses=documented(400, 404, 413, 422),
)
def confirm_received(
    order_id: OrderId, shop: ShopDep, token: Annotated[str, Depends(bearer)]
) -> OrderStatusOut:
    """The buyer saved the key: the shop forgets it and shows only its last six characters."""
    flows.confirm_receipt(shop, order_id=order_id, token=token)
    return get_order(order_id, shop, token)


@router.get("/orders/{order_id}/usage", response_model=UsageOut, responses=documented(404, 422))
def get_usage(order_id: OrderId, shop: ShopDep, token: Annotated[str, Depends(bearer)]) -> UsageOut:
    u = flows.usage(shop, order_id=order_id, token=token)
    return UsageOut(
        order_id=order_id,
        credit_cents=u.credit_cents,
        used_cents=u.used_cents,
        remaining_cents=u.remaining_cents,
        expires_at=iso(u.expires_at),
        seconds_left=u.seconds_left,
        checked_at=iso(u.checked_at),
        live=u.live,
    )
