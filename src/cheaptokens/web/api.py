"""The public JSON API (``/api/...``). Amounts are integer cents; times are UTC ISO-8601.

Handlers parse, call one use case from :mod:`cheaptokens.orders.flows`, and render.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from cheaptokens.errors import InvalidInput, NotFound
from cheaptokens.models import Order, Quote
from cheaptokens.orders import flows
from cheaptokens.orders import state as st
from cheaptokens.pricing.curve import params_to_dict
from cheaptokens.shop import Shop
from cheaptokens.times import iso_z, next_midnight
from cheaptokens.web.deps import (
    DbDep,
    NowDep,
    RulesDep,
    ShopDep,
    client_id,
    limiter,
    place_order,
    webhook_policy,
)
from cheaptokens.web.errors import documented
from cheaptokens.web.pricecache import PriceCache

router = APIRouter(prefix="/api", tags=["shop"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuoteIn(Strict):
    credit_cents: StrictInt = Field(description="Credit to buy, in cents ($1 = 100).")


MAX_WEBHOOK_URL = 2000

# Ids are printable ASCII: anything else cannot be one of ours, and a NUL would not even
# reach PostgreSQL (it refuses NUL in text), so refuse it here with a clear 422.
ID_PATTERN = r"^[!-~]{1,64}$"


class OrderIn(Strict):
    quote_id: StrictStr | None = Field(default=None, pattern=ID_PATTERN)
    credit_cents: StrictInt | None = None
    models: Literal["private", "all"] = Field(
        default="private",
        description='Which models the key may call: "private" (Venice\'s private models, the '
        'default) or "all" (only where the shop sells such keys, from a minimum order).',
    )
    webhook_url: StrictStr | None = Field(
        default=None,
        max_length=MAX_WEBHOOK_URL,
        description="Optional: an https:// URL the shop POSTs the order's events to (key.ready, "
        "credit.low, credit.exhausted, key.expiring, key.replaced), signed following the "
        "Standard Webhooks specification with webhook_secret. In live mode it must resolve to "
        "public addresses only (docs: /docs/alerts).",
    )


class WebhookIn(Strict):
    url: StrictStr = Field(
        max_length=MAX_WEBHOOK_URL,
        description="The new webhook URL (the same rules as POST /api/orders' webhook_url).",
    )


class PricingOut(BaseModel):
    now: str
    list_cents_per_dollar: int
    price_cents_per_dollar: str = Field(description="Price of $1 of credit, in cents (decimal).")
    price_fraction: str
    discount: str
    discount_percent: str
    remaining_cents: int = Field(
        description="x in the formula: credit neither sold nor withheld (open quotes and "
        "checkouts do not count: an unpaid hold does not move the price)."
    )
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
    withheld_cents: int = Field(
        description="Kept off sale: the Venice accounts' live balances cannot cover it."
    )
    remaining_cents: int = Field(description="What can be bought now.")
    sold_out: bool = Field(description="Nothing is left until 00:00 UTC.")
    held_out: bool = Field(
        description="What is left is held by open quotes and checkouts; some may return."
    )
    returns_at: str | None = Field(
        description="When credit returns: 00:00 UTC when sold out, the first hold's end when "
        "held out."
    )


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
    webhook_url: str | None = Field(default=None, description="Where events are sent.")
    webhook_secret: str | None = Field(
        default=None,
        description="The webhook's signing secret (whsec_…): shown in this response only. "
        "Verify each event with it (docs: /docs/alerts). Lost? Set the webhook again with "
        "PUT /api/orders/{id}/webhook for a new secret.",
    )


class KeyOut(BaseModel):
    api_key: str | None = Field(description="The key, until the buyer confirms receipt.")
    last6: str | None
    credit_cents: int = Field(
        description="The key's spending cap in cents (its Venice DIEM limit × 100): the credit "
        "bought, or after a replacement what the old key had not spent."
    )
    base_url: str
    expires_at: str | None


class ReplacementOut(BaseModel):
    """The order's first key could not spend what it held, so the shop replaced it."""

    reason: str = Field(description="Why the key was replaced.")
    spent_before_cents: int = Field(description="Credit the earlier key(s) used.")
    refund_due_cents: int | None = Field(
        default=None, description="Set when no stock was left: the pro-rata refund."
    )


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
    models: str = Field(description='Which models the key may call: "private" or "all".')
    replacement: ReplacementOut | None = None
    webhook_url: str | None = Field(
        default=None,
        description="Where the order's events are sent (GET /api/orders/{id}/deliveries "
        "has the delivery log); null without a webhook.",
    )


class UsageOut(BaseModel):
    order_id: str
    credit_cents: int
    used_cents: int
    remaining_cents: int
    expires_at: str | None
    seconds_left: int
    checked_at: str | None
    live: bool
    burn_cents_per_hour: int | None = Field(
        default=None,
        description="The order's average spend per hour since its key was made, in cents "
        "(rounded up); null until the key has spent something.",
    )
    runs_out_at: str | None = Field(
        default=None,
        description="At that rate, when the credit runs out; null when it lasts until "
        "expires_at (00:00 UTC) or the rate is not known yet.",
    )


class WebhookOut(BaseModel):
    order_id: str
    webhook_url: str
    webhook_secret: str = Field(description="The new signing secret: shown in this response only.")


class AttemptOut(BaseModel):
    at: str
    attempt: int
    status_code: int | None = Field(description="The receiver's HTTP status; null: no answer.")
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    id: str = Field(description="The event's webhook-id (the same on every retry).")
    type: str
    created_at: str
    status: Literal["pending", "delivered", "failed", "dropped"]
    attempts: int
    next_attempt_at: str | None = Field(description="When a pending event is tried again.")
    delivered_at: str | None
    data: dict[str, Any] = Field(description="The event's data, as sent.")
    tries: list[AttemptOut]


class DeliveriesOut(BaseModel):
    order_id: str
    webhook_url: str | None
    events: list[DeliveryOut] = Field(description="Newest first, with every attempt.")


FORMULA = (
    "price per $1 = list × clamp((a + b·g(h)) × (X̂(t)/x)^β, floor, 1); "
    "g(h) = (1 − e^(−h/6)) / (1 − e^(−4)); h = hours to 00:00 UTC; x = credit unsold; "
    "X̂(t) = capacity × plan(t), plan linear between hours; buyer pays floor(cents × price); "
    "open holds (unpaid quotes and checkouts) are not sold, so they do not lower x"
)


def random_uuid(key: str | None) -> str | None:
    """An ``Idempotency-Key`` must be a random UUID (version 4, or 7): a key anyone could
    guess or copy from a sample would let a second client replay into a first one's order."""
    if key is None:
        return None
    try:
        parsed = uuid.UUID(key)
    except ValueError:
        parsed = None
    if parsed is None or parsed.version not in (4, 7) or str(parsed) != key.lower():
        raise InvalidInput(
            "Idempotency-Key must be a random UUID (e.g. from uuid.uuid4()), new for each purchase",
            field="Idempotency-Key",
        )
    return str(parsed)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else iso_z(when)


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
    view = flows.pricing_now(db=shop.db, rules=shop.rules, now=shop.clock())
    fraction = view.fraction
    per_dollar = (fraction * view.params.list_cents).normalize()
    return PricingOut(
        now=iso_z(view.now),
        list_cents_per_dollar=view.params.list_cents,
        price_cents_per_dollar=format(per_dollar, "f"),
        price_fraction=str(fraction),
        discount=str(view.discount),
        discount_percent=percent(view.discount),
        remaining_cents=view.unsold_cents,
        key_expires_at=iso_z(next_midnight(view.now)),
        next_change_at=iso_z(view.params.valid_until),
        params_hash=view.params_hash,
        params=params_to_dict(view.params),
        formula=FORMULA,
    )


@router.get("/pricing/params/{params_hash}", responses=documented(404, 422))
def pricing_params(
    params_hash: Annotated[str, Path(pattern=r"^[0-9a-f]{1,64}$")], db: DbDep
) -> dict[str, Any]:
    """A published parameter set, to recompute any quote made with it."""
    return flows.params_body(db=db, digest=params_hash)


@router.get("/supply", response_model=SupplyOut)
def supply(db: DbDep, rules: RulesDep, now: NowDep) -> SupplyOut:
    view = flows.pricing_now(db=db, rules=rules, now=now)
    sold_out = view.unsold_cents < rules.min_order_cents
    held_out = not sold_out and view.remaining_cents < rules.min_order_cents
    returns_at = next_midnight(view.now) if sold_out else None
    if held_out:
        returns_at = flows.first_hold_end(db=db, now=view.now) or next_midnight(view.now)
    return SupplyOut(
        day=view.now.date().isoformat(),
        capacity_cents=view.capacity_cents,
        sold_cents=view.sold_cents,
        reserved_cents=view.reserved_cents,
        withheld_cents=view.withheld_cents,
        remaining_cents=view.remaining_cents,
        sold_out=sold_out,
        held_out=held_out,
        returns_at=_iso(returns_at),
    )


def quote_rate(shop: Shop, quote: Quote) -> tuple[str, str]:
    """The rate a quote was priced at (price per $1 in cents, discount in percent): the
    published curve at the quote's time and unsold credit, as docs/pricing.md recomputes it."""
    fraction, list_cents = flows.quote_rate(db=shop.db, quote=quote)
    per_dollar = (fraction * list_cents).normalize()
    return format(per_dollar, "f"), percent(1 - fraction)


@router.post(
    "/quotes",
    response_model=QuoteOut,
    status_code=201,
    responses=documented(400, 409, 413, 422, 429),
)
def create_quote(body: QuoteIn, request: Request, shop: ShopDep) -> QuoteOut:
    limiter(request).check("quote", client_id(request), shop.settings.quotes_per_minute)
    quote = flows.new_quote(
        db=shop.db,
        rules=shop.rules,
        credit_cents=body.credit_cents,
        now=shop.clock(),
        client=client_id(request),
    )
    per_dollar, discount_percent = quote_rate(shop, quote)
    return QuoteOut(
        quote_id=quote.id,
        credit_cents=quote.credit_cents,
        price_cents=quote.price_cents,
        price_cents_per_dollar=per_dollar,
        discount_percent=discount_percent,
        valid_until=iso_z(quote.valid_until),
        key_expires_at=iso_z(next_midnight(quote.created_at)),
        params_hash=quote.params_hash,
        remaining_cents=quote.remaining_cents,
        created_at=iso_z(quote.created_at),
    )


@router.post(
    "/orders",
    response_model=OrderOut,
    status_code=201,
    responses=documented(400, 403, 404, 409, 413, 422, 429, 503),
)
def create_order(
    body: OrderIn,
    request: Request,
    shop: ShopDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            pattern=r"^[ -~]{1,200}$",
            description="A random UUID, new for each purchase: a retry with the same key and "
            "body returns the same order. Keys are scoped to the client.",
        ),
    ] = None,
) -> OrderOut:
    limiter(request).check("order", client_id(request), shop.settings.orders_per_minute)
    if body.quote_id is None and body.credit_cents is None:
        raise InvalidInput(
            "send quote_id (from POST /api/quotes) or credit_cents", field="quote_id"
        )
    placed = place_order(
        shop,
        quote_id=body.quote_id,
        credit_cents=body.credit_cents,
        idempotency_key=random_uuid(idempotency_key),
        client=client_id(request),
        key_models=body.models,
        webhook_url=body.webhook_url,
    )
    o = placed.order
    return OrderOut(
        order_id=o.id,
        order_token=placed.token,
        status=o.status,
        credit_cents=o.credit_cents,
        price_cents=o.price_cents,
        checkout_url=o.checkout_url,
        checkout_expires_at=iso_z(o.checkout_expires_at),
        order_url=f"{shop.settings.public_url}/orders/{o.id}#token={placed.token}",
        webhook_url=body.webhook_url,
        webhook_secret=placed.webhook_secret,
    )


MESSAGES = {
    st.AWAITING_PAYMENT: "Waiting for payment at checkout_url.",
    st.PAID: "Paid. Your key is being created; poll again in a second.",
    st.FULFILLED: "Your key is ready. Save it now: once you confirm receipt it is not shown again.",
    st.EXPIRED: "The key expired at 00:00 UTC.",
    st.REFUNDED: "The order was refunded; no key is live for it.",
    st.FAILED: "The key could not be made and the refund failed; the operator has been alerted.",
    st.CANCELLED: "The checkout was declined or expired; nothing was charged.",
    st.REPLACING: (
        "Your key can no longer spend its credit (see replacement.reason): it has been "
        "deleted, and a new key with the unspent credit is being made; poll again in a second."
    ),
}
REPLACED = (
    "Your key was replaced (see replacement.reason): the old key no longer works. This new key "
    "holds the credit the old one had not spent. Save it now: it is shown until you confirm."
)


#: A fulfilled order whose buyer confirmed receipt: the key is no longer shown.
RECEIVED_MESSAGE = (
    "You saved your key: the shop no longer has it and shows only its last six characters "
    "(key.last6). It works until it expires at 00:00 UTC."
)


def message_for(order: Order) -> str:
    """``message`` of an order: per status, whether the buyer has saved the key, and whether
    the key is a replacement."""
    if order.status == st.FULFILLED and order.key_received_at is not None:
        return RECEIVED_MESSAGE
    if order.status == st.FULFILLED and order.replace_reason:
        return REPLACED
    return MESSAGES.get(order.status, "")


@router.get("/orders/{order_id}", response_model=OrderStatusOut, responses=documented(404, 422))
def get_order(
    order_id: OrderId, shop: ShopDep, token: Annotated[str, Depends(bearer)]
) -> OrderStatusOut:
    order = flows.order_for(db=shop.db, order_id=order_id, token=token)
    key = None
    if order.key_id is not None and order.status in (st.FULFILLED, st.EXPIRED):
        revealed = flows.reveal_key(box=shop.box, order=order)
        key = KeyOut(
            api_key=revealed if order.status == st.FULFILLED else None,
            last6=order.key_last6,
            credit_cents=order.key_cap_cents,
            base_url=shop.buyer_base_url,
            expires_at=_iso(order.key_expires_at),
        )
    return OrderStatusOut(
        order_id=order.id,
        status=order.status,
        credit_cents=order.credit_cents,
        price_cents=order.price_cents,
        created_at=iso_z(order.created_at),
        paid_at=_iso(order.paid_at),
        checkout_url=order.checkout_url if order.status == st.AWAITING_PAYMENT else None,
        key=key,
        base_url=shop.buyer_base_url,
        expires_at=_iso(order.key_expires_at),
        message=message_for(order),
        models=order.key_models,
        replacement=(
            ReplacementOut(
                reason=order.replace_reason,
                spent_before_cents=order.spent_before_cents,
                refund_due_cents=order.refund_due_cents,
            )
            if order.replace_reason
            else None
        ),
        webhook_url=flows.webhook_of(db=shop.db, order_id=order.id),
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
    flows.confirm_receipt(db=shop.db, order_id=order_id, token=token, now=shop.clock())
    return get_order(order_id, shop, token)


@router.post(
    "/orders/{order_id}/reissue",
    response_model=OrderStatusOut,
    status_code=202,
    responses=documented(400, 404, 413, 422, 429),
)
def reissue(
    order_id: OrderId,
    request: Request,
    shop: ShopDep,
    token: Annotated[str, Depends(bearer)],
) -> OrderStatusOut:
    """Lost the key? The shop deletes it first — it stops working at once — then makes a new
    key on the same terms holding the unspent credit (cap − usage at the moment of deletion).
    Poll ``GET /api/orders/{id}`` until ``status`` is ``fulfilled``: the new key is shown
    until you confirm receipt. At most 3 times a day per order."""
    limiter(request).check("reissue", client_id(request), shop.settings.orders_per_minute)
    flows.reissue(db=shop.db, order_id=order_id, token=token, now=shop.clock())
    return get_order(order_id, shop, token)


@router.get("/orders/{order_id}/usage", response_model=UsageOut, responses=documented(404, 422))
def get_usage(order_id: OrderId, shop: ShopDep, token: Annotated[str, Depends(bearer)]) -> UsageOut:
    u = flows.usage(
        db=shop.db, gateways=shop.gateways, order_id=order_id, token=token, now=shop.clock()
    )
    return UsageOut(
        order_id=order_id,
        credit_cents=u.credit_cents,
        used_cents=u.used_cents,
        remaining_cents=u.remaining_cents,
        expires_at=_iso(u.expires_at),
        seconds_left=u.seconds_left,
        checked_at=_iso(u.checked_at),
        live=u.live,
        burn_cents_per_hour=u.burn_cents_per_hour,
        runs_out_at=_iso(u.runs_out_at),
    )


@router.put(
    "/orders/{order_id}/webhook",
    response_model=WebhookOut,
    responses=documented(400, 404, 413, 422, 429),
)
def set_webhook(
    order_id: OrderId,
    body: WebhookIn,
    request: Request,
    shop: ShopDep,
    token: Annotated[str, Depends(bearer)],
) -> WebhookOut:
    """Set or replace the order's webhook: events not yet delivered go to the new URL. The
    answer holds a new signing secret (the old one stops working), shown only here."""
    limiter(request).check("order", client_id(request), shop.settings.orders_per_minute)
    secret = flows.set_webhook(
        db=shop.db,
        box=shop.box,
        policy=webhook_policy(shop),
        order_id=order_id,
        token=token,
        url=body.url,
        now=shop.clock(),
    )
    return WebhookOut(order_id=order_id, webhook_url=body.url, webhook_secret=secret)


@router.get(
    "/orders/{order_id}/deliveries",
    response_model=DeliveriesOut,
    responses=documented(404, 422),
)
def get_deliveries(
    order_id: OrderId, shop: ShopDep, token: Annotated[str, Depends(bearer)]
) -> DeliveriesOut:
    """The order's webhook and the delivery log of its events (newest first), each with
    every attempt: when, the receiver's status, how long it took."""
    log = flows.deliveries(db=shop.db, order_id=order_id, token=token)
    return DeliveriesOut(
        order_id=order_id,
        webhook_url=log.url,
        events=[
            DeliveryOut(
                id=e.event_id,
                type=e.kind,
                created_at=iso_z(e.created_at, "milliseconds"),
                status=e.status,
                attempts=e.attempts,
                next_attempt_at=_iso(e.next_attempt_at),
                delivered_at=_iso(e.delivered_at),
                data=e.body.get("data", {}),
                tries=[
                    AttemptOut(
                        at=iso_z(a.at),
                        attempt=a.attempt,
                        status_code=a.status_code,
                        error=a.error,
                        duration_ms=a.duration_ms,
                    )
                    for a in e.tries
                ],
            )
            for e in log.events
        ],
    )
