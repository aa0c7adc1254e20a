"""The public JSON API (``/api/...``). Amounts are integer cents; times are UTC ISO-8601.

Handlers parse, call one use case from :mod:`cheaptokens.orders.flows`, and render.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, WithJsonSchema

from cheaptokens.errors import InvalidInput, NotFound, ShopError
from cheaptokens.models import Order, Quote, Topup
from cheaptokens.orders import flows, history, standing, wallets
from cheaptokens.orders import state as st
from cheaptokens.orders import x402 as x402flow
from cheaptokens.orders import x402_topups as x402topups
from cheaptokens.orders.ids import order_token
from cheaptokens.payments import siwx
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
    request_worker,
    webhook_policy,
)
from cheaptokens.web.errors import documented
from cheaptokens.web.pricecache import PriceCache
from cheaptokens.web.pricehistory import PricingHistoryOut, history_out

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


class TopupIn(Strict):
    credit_cents: StrictInt = Field(description="More credit for the same key, in cents.")
    payment: Literal["checkout", "x402"] | None = Field(
        default=None,
        description='How to pay: "checkout" (a card or sandbox checkout_url) or "x402" (USDC: '
        "402 with x402 payment requirements, then the same request with PAYMENT-SIGNATURE). "
        "Default: x402 for an order bought with x402 or a request carrying PAYMENT-SIGNATURE, "
        "else checkout.",
    )


class TopupOut(BaseModel):
    topup_id: str
    status: str = Field(
        description="awaiting_payment, cancelled, paid, applied (the key's cap is raised), "
        "refunded or failed."
    )
    credit_cents: int
    price_cents: int
    created_at: str
    checkout_url: str | None = Field(description="Where to pay, while awaiting payment.")
    checkout_expires_at: str
    applied_at: str | None
    failure_reason: str | None
    key_credit_cents: int | None = Field(
        default=None,
        description="x402 top-ups: the key's cap after this top-up, in cents (the 200 answer).",
    )


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
    total_credit_cents: int = Field(
        description="The credit bought: the order's plus every applied top-up."
    )
    topups: list[TopupOut] = Field(default_factory=list)
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

#: The x402 payment a request carries (base64 JSON in ``PAYMENT-SIGNATURE``), if any.
PaymentSignature = Annotated[
    str | None,
    Header(
        alias="PAYMENT-SIGNATURE",
        max_length=16_000,
        description="The x402 payment payload (base64 JSON), signed by the paying wallet.",
    ),
]


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


@router.get("/pricing/history", response_model=PricingHistoryOut, responses=documented(422))
def pricing_history(
    db: DbDep,
    now: NowDep,
    days: Annotated[int, Query(ge=1, le=history.MAX_DAYS, description="How many past days.")] = 14,
) -> PricingHistoryOut:
    """Past days' published curves (the price at each hour), when each day sold out or how
    much went unsold, and the parameter sets in force (each recomputable by its hash)."""
    return history_out(flows.pricing_history(db=db, today=now.date(), days=days))


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
    added = flows.topups_of(db=shop.db, order_id=order.id)
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
        total_credit_cents=order.credit_cents
        + sum(t.credit_cents for t in added if t.status == "applied"),
        topups=[topup_out(t) for t in added],
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


def topup_out(t: Topup) -> TopupOut:
    return TopupOut(
        topup_id=t.id,
        status=t.status,
        credit_cents=t.credit_cents,
        price_cents=t.price_cents,
        created_at=iso_z(t.created_at),
        checkout_url=t.checkout_url if t.status == "awaiting_payment" else None,
        checkout_expires_at=iso_z(t.checkout_expires_at),
        applied_at=_iso(t.applied_at),
        failure_reason=t.failure_reason,
    )


class X402RequiredOut(BaseModel):
    """x402 (version 2) payment requirements; the same, base64, in ``PAYMENT-REQUIRED``."""

    model_config = ConfigDict(extra="allow")
    x402Version: int = 2
    error: str | None = Field(default=None, description="Why the payment was refused: code: words.")
    reason: str | None = Field(default=None, description="The refusal's machine code alone.")
    accepts: list[dict[str, Any]] = Field(description="What to pay: scheme, network, amount, …")
    resource: dict[str, Any] | None = None


TOPUP_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": TopupOut,
        "description": "x402: paid and applied, the key's cap is raised; the settlement is in "
        "PAYMENT-RESPONSE.",
    },
    202: {"model": TopupOut, "description": "x402: paid; the cap is being raised: poll the order."},
    402: {
        "model": X402RequiredOut,
        "description": "x402: sign one of `accepts` (the price of credit_cents more, reserved on "
        "the key's account) and send the same request with PAYMENT-SIGNATURE. After a refused "
        "payment `reason` says why and nothing was charged.",
    },
}


@router.post(
    "/orders/{order_id}/topups",
    response_model=TopupOut,
    status_code=201,
    responses={**TOPUP_RESPONSES, **documented(400, 404, 409, 413, 422, 429, 503)},
)
def create_topup(
    order_id: OrderId,
    body: TopupIn,
    request: Request,
    shop: ShopDep,
    token: Annotated[str, Depends(bearer)],
    idempotency_key: Annotated[
        str | None,
        Header(
            pattern=r"^[ -~]{1,200}$",
            description="A random UUID, new for each top-up: a retry returns the same top-up "
            "(checkout only: an x402 payment is its own key, one authorization pays once).",
        ),
    ] = None,
    payment_signature: PaymentSignature = None,
) -> Any:
    """More credit on the same key: pay the current price for ``credit_cents`` more; once paid
    the key's cap rises by that much (same key, same expiry). By checkout: the answer is 201
    with ``checkout_url``. With x402 (an order bought with x402, ``"payment": "x402"``, or a
    PAYMENT-SIGNATURE header): 402 with the payment requirements, then, with the signed
    payment, 200 once the cap is raised and the payment settled — if it does not settle, the
    cap is set back and the answer is 402; nothing is charged. The credit must fit on the
    Venice account the key lives on: if it does not, the answer is
    ``409 no_room_on_key_account`` and a new key (``POST /api/orders`` or ``POST /api/buy``)
    is the way."""
    order = flows.order_for(db=shop.db, order_id=order_id, token=token)
    if x402topups.wants_x402(order, header=payment_signature, payment=body.payment):
        return x402_topup(order_id, body, request, shop, token, payment_signature)
    limiter(request).check("order", client_id(request), shop.settings.orders_per_minute)
    placed = flows.new_topup(
        db=shop.db,
        rules=shop.rules,
        payments=shop.payments,
        public_url=shop.settings.public_url,
        clock=shop.clock,
        order_id=order_id,
        token=token,
        credit_cents=body.credit_cents,
        idempotency_key=random_uuid(idempotency_key),
        client=client_id(request),
    )
    return topup_out(placed.topup)


def x402_topup(
    order_id: str,
    body: TopupIn,
    request: Request,
    shop: Shop,
    token: str,
    header: str | None,
) -> Response:
    gateway = x402_gateway(shop)
    kind = "quote" if header is None else "order"
    per_minute = (
        shop.settings.quotes_per_minute if kind == "quote" else shop.settings.orders_per_minute
    )
    limiter(request).check(kind, client_id(request), per_minute)
    outcome = x402topups.topup(
        db=shop.db,
        rules=shop.rules,
        gateways=shop.gateways,
        x402=gateway,
        clock=shop.clock,
        order_id=order_id,
        token=token,
        credit_cents=body.credit_cents,
        header=header,
        client=client_id(request),
        url=f"{shop.settings.public_url}/api/orders/{order_id}/topups",
        worker=request_worker(),
        sync_seconds=shop.settings.x402_sync_seconds,
    )
    if isinstance(outcome, x402flow.PaymentNeeded):
        return payment_required(outcome, gateway)
    out = topup_out(outcome.topup)
    done = outcome.topup.status == "applied"
    if done:
        out.key_credit_cents = outcome.order.key_cap_cents
    headers = {"PAYMENT-RESPONSE": outcome.payment_header} if outcome.payment_header else {}
    return JSONResponse(out.model_dump(), status_code=200 if done else 202, headers=headers)


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


# ----------------------------------------------------------------------------- x402
class BuyIn(Strict):
    credit_cents: StrictInt = Field(description="Credit to buy, in cents ($1 = 100).")
    models: Literal["private", "all"] = Field(
        default="private", description='Which models the key may call: "private" or "all".'
    )
    webhook_url: StrictStr | None = Field(
        default=None,
        max_length=MAX_WEBHOOK_URL,
        description="Optional: where the shop POSTs the order's events (key.ready, credit.low, "
        "credit.exhausted, key.expiring, key.replaced), signed following the Standard Webhooks "
        "specification with webhook_secret (in the paid answer only). The same rules as "
        "POST /api/orders' webhook_url; checked on the unpaid call too (docs: /docs/alerts).",
    )


class BuyKeyOut(BaseModel):
    api_key: str = Field(description="The Venice API key (shown until you confirm receipt).")
    base_url: str = Field(description="Where the key works (an OpenAI-compatible API).")
    expires_at: str = Field(description="00:00 UTC after the purchase.")
    credit_cents: int = Field(description="The key's spending cap in cents.")


class BuyOut(BaseModel):
    order_id: str
    order_token: str = Field(description="Bearer token for GET /api/orders/{id}.")
    status: str = Field(description="fulfilled (200), or paid while the key is made (202).")
    credit_cents: int
    price_cents: int = Field(description="What the wallet paid, in cents (USDC × 100).")
    key: BuyKeyOut | None = Field(description="The key; null while it is made (202: poll).")
    message: str
    order_url: str
    webhook_url: str | None = Field(default=None, description="Where events are sent.")
    webhook_secret: str | None = Field(
        default=None,
        description="The webhook's signing secret (whsec_…): in this answer only, never again "
        "(not on a replayed payment, not in GET /api/orders/{id}). Lost? "
        "PUT /api/orders/{id}/webhook sets a new one.",
    )


X402_RESPONSES: dict[int | str, dict[str, Any]] = {
    402: {
        "model": X402RequiredOut,
        "description": "Payment required: sign one of `accepts` (x402 v2, exact, USDC) and send "
        "it in PAYMENT-SIGNATURE. After a refused payment `error` says why (insufficient "
        "balance, expired, replayed, wrong network or payTo, price changed) and nothing was "
        "charged.",
    },
    202: {"model": BuyOut, "description": "Paid; the key is being made: poll the order."},
}


def x402_gateway(shop: Shop) -> Any:
    if shop.x402 is None:
        raise NotFound("this shop does not take x402 payments")
    return shop.x402


def payment_required(needed: x402flow.PaymentNeeded, gateway: Any) -> Response:
    body = needed.required.model_dump(by_alias=True, exclude_none=True)
    if needed.code:
        body["reason"] = needed.code
    return JSONResponse(
        body,
        status_code=402,
        headers={"PAYMENT-REQUIRED": gateway.encode_required(needed.required)},
    )


@router.post(
    "/buy",
    response_model=BuyOut,
    responses={**X402_RESPONSES, **documented(400, 403, 404, 409, 413, 422, 429, 503)},
)
def buy(
    body: BuyIn,
    request: Request,
    shop: ShopDep,
    payment_signature: PaymentSignature = None,
) -> Response:
    """Buy a key in one call with x402 (USDC): without PAYMENT-SIGNATURE the answer is 402 with
    the price of ``credit_cents`` (locked for the quote's time); with a payment signed for it
    the answer is 200 with the order and its key, and the settlement in PAYMENT-RESPONSE. No key
    is handed out unless the payment settled; a refused payment changes nothing."""
    gateway = x402_gateway(shop)
    kind = "quote" if payment_signature is None else "order"
    per_minute = (
        shop.settings.quotes_per_minute if kind == "quote" else shop.settings.orders_per_minute
    )
    limiter(request).check(kind, client_id(request), per_minute)
    outcome = x402flow.buy(
        db=shop.db,
        rules=shop.rules,
        gateways=shop.gateways,
        box=shop.box,
        x402=gateway,
        token_key=shop.token_key,
        clock=shop.clock,
        credit_cents=body.credit_cents,
        key_models=body.models,
        header=payment_signature,
        client=client_id(request),
        url=f"{shop.settings.public_url}/api/buy",
        worker=request_worker(),
        sync_seconds=shop.settings.x402_sync_seconds,
        webhook_url=body.webhook_url,
        webhook_policy=webhook_policy(shop),
    )
    if isinstance(outcome, x402flow.PaymentNeeded):
        return payment_required(outcome, gateway)
    o = outcome.order
    done = outcome.api_key is not None
    out = BuyOut(
        order_id=o.id,
        order_token=outcome.token,
        status=o.status,
        credit_cents=o.credit_cents,
        price_cents=o.price_cents,
        key=BuyKeyOut(
            api_key=outcome.api_key,
            base_url=shop.buyer_base_url,
            expires_at=iso_z(o.key_expires_at or next_midnight(o.created_at)),
            credit_cents=o.key_cap_cents,
        )
        if outcome.api_key is not None
        else None,
        message=message_for(o),
        order_url=f"{shop.settings.public_url}/orders/{o.id}#token={outcome.token}",
        webhook_url=body.webhook_url,
        webhook_secret=outcome.webhook_secret,
    )
    headers = {"PAYMENT-RESPONSE": outcome.payment_header} if outcome.payment_header else {}
    return JSONResponse(out.model_dump(), status_code=200 if done else 202, headers=headers)


# ----------------------------------------------------------------------------- the wallet
class WalletOrderOut(BaseModel):
    order_id: str
    order_token: str = Field(description="Bearer token for GET /api/orders/{id} and friends.")
    status: str
    credit_cents: int
    price_cents: int
    created_at: str
    key_last6: str | None
    key_shown: bool = Field(description="The key can still be revealed (receipt not confirmed).")
    expires_at: str | None


class WalletOrdersOut(BaseModel):
    wallet: str
    orders: list[WalletOrderOut]


SIWX_RESPONSES: dict[int | str, dict[str, Any]] = {
    402: {
        "model": X402RequiredOut,
        "description": "Sign in with your wallet: `extensions['sign-in-with-x']` holds a "
        "challenge for this URL; sign it (EIP-191) and send it in SIGN-IN-WITH-X (the x402 "
        "SDK's client does this by itself). Nothing is charged.",
    },
    **documented(401, 404, 422, 429),
}


def signed_in(request: Request, shop: Shop) -> str | Response:
    """The wallet that signed in for this very URL, or the 402 challenge to sign."""
    gateway = x402_gateway(shop)
    uri = f"{shop.settings.public_url}{request.url.path}"
    header = request.headers.get(siwx.HEADER)
    if header is None:
        challenge = siwx.challenge(
            key=shop.token_key,
            uri=uri,
            network=shop.settings.x402_network,
            now=shop.clock(),
            seconds=shop.settings.siwx_seconds,
        )
        required = gateway.payment_required(
            accepts=[],
            url=uri,
            description="sign in with the wallet that paid",
            extensions=challenge,
        )
        return payment_required(x402flow.PaymentNeeded(required), gateway)
    try:
        proof = siwx.verify(
            header, key=shop.token_key, uri=uri, max_age_seconds=shop.settings.siwx_seconds
        )
    except siwx.SignInRefused as exc:
        raise SignInInvalid(f"{exc} ({exc.code})", field=siwx.HEADER) from None
    wallets.spend_nonce(
        shop.db,
        nonce=proof.nonce,
        address=proof.address,
        expires_at=proof.expires_at,
        now=shop.clock(),
    )
    return proof.address


class SignInInvalid(ShopError):
    status = 401
    code = "invalid_siwx"


def wallet_order(shop: Shop, order: Order) -> WalletOrderOut:
    return WalletOrderOut(
        order_id=order.id,
        order_token=order_token(order.id, token_key=shop.token_key),
        status=order.status,
        credit_cents=order.credit_cents,
        price_cents=order.price_cents,
        created_at=iso_z(order.created_at),
        key_last6=order.key_last6,
        key_shown=order.key_secret is not None,
        expires_at=_iso(order.key_expires_at),
    )


@router.get("/wallet/orders", response_model=WalletOrdersOut, responses=SIWX_RESPONSES)
def wallet_orders(request: Request, shop: ShopDep) -> Any:
    """The purchases of the wallet that signs in (x402 sign-in-with-x), newest first."""
    limiter(request).check("quote", client_id(request), shop.settings.quotes_per_minute)
    who = signed_in(request, shop)
    if isinstance(who, Response):
        return who
    return WalletOrdersOut(
        wallet=who,
        orders=[wallet_order(shop, o) for o in wallets.purchases(shop.db, wallet=who)],
    )


@router.get("/wallet/orders/{order_id}", response_model=OrderStatusOut, responses=SIWX_RESPONSES)
def wallet_order_status(order_id: OrderId, request: Request, shop: ShopDep) -> Any:
    """One purchase of the signed-in wallet, with its key while receipt is not confirmed."""
    limiter(request).check("quote", client_id(request), shop.settings.quotes_per_minute)
    who = signed_in(request, shop)
    if isinstance(who, Response):
        return who
    order = wallets.order_of(shop.db, wallet=who, order_id=order_id)
    return get_order(order.id, shop, order_token(order.id, token_key=shop.token_key))


@router.post(
    "/wallet/orders/{order_id}/reissue",
    response_model=OrderStatusOut,
    status_code=202,
    responses={**SIWX_RESPONSES, **documented(400, 429)},
)
def wallet_reissue(order_id: OrderId, request: Request, shop: ShopDep) -> Any:
    """Lost the key? The signed-in wallet gets a new one, as ``POST /api/orders/{id}/reissue``
    gives it (the old key deleted first, the unspent credit on the new one; 3 a day)."""
    limiter(request).check("reissue", client_id(request), shop.settings.orders_per_minute)
    who = signed_in(request, shop)
    if isinstance(who, Response):
        return who
    wallets.reissue(shop.db, wallet=who, order_id=order_id, now=shop.clock())
    return get_order(order_id, shop, order_token(order_id, token_key=shop.token_key))


# ----------------------------------------------------------------------------- standing orders
#: A whole number or a decimal string (never a JSON float: money); checked by the use case,
#: which names the field when it is neither.
DecimalIn = Annotated[
    Any,
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}),
]


class StandingIn(Strict):
    credit_cents: StrictInt = Field(
        description="Credit to buy at least, in cents ($1 = 100): X in the order."
    )
    max_price_per_dollar_cents: DecimalIn = Field(
        default=None,
        description="Fire when the price of $1 of credit (GET /api/pricing's "
        "price_cents_per_dollar) is at most this many cents: a whole number or a decimal "
        'string ("42.5"). Send this or min_discount_percent.',
    )
    min_discount_percent: DecimalIn = Field(
        default=None,
        description="Fire when the discount off list is at least this (percent, whole or a "
        "decimal string with 2 decimals at most). Send this or max_price_per_dollar_cents.",
    )
    expires_at: StrictStr = Field(
        description="Give up at this UTC time (ISO-8601, …Z): at most the next 00:00 UTC, at "
        "least a minute ahead. The authorization must stay valid until then."
    )
    models: Literal["private", "all"] = Field(
        default="private", description='Which models the key may call: "private" or "all".'
    )
    webhook_url: StrictStr | None = Field(
        default=None,
        max_length=MAX_WEBHOOK_URL,
        description="Optional: where the order's events go once it fires (key.ready first), "
        "signed with webhook_secret (Standard Webhooks; the rules of POST /api/orders).",
    )


class StandingTermsOut(BaseModel):
    credit_cents: int = Field(description="The least credit the key will hold (X).")
    max_price_per_dollar_cents: str | None
    min_discount_percent: str | None
    expires_at: str
    models: str
    authorized_cents: int = Field(
        description="What the authorization pays if it fires (X at the limit price, rounded "
        "down). Fired at a lower price, the key holds the more credit that buys."
    )


class StandingOrderOut(BaseModel):
    standing_id: str
    status: str = Field(
        description="waiting, fired (its order was placed: see `order`), cancelled, expired "
        "(T passed: nothing charged) or failed (the authorization no longer settles: no key, "
        "nothing charged)."
    )
    wallet: str
    terms: StandingTermsOut
    created_at: str
    reason: str | None = Field(description="Why it ended (cancelled, expired, failed).")
    order_id: str | None
    order_token: str | None = Field(
        description="Bearer token of the order it placed (GET /api/orders/{id})."
    )
    order: OrderStatusOut | None = Field(
        description="The order it placed, as GET /api/orders/{id} shows it: the key until "
        "you confirm receipt (POST /api/orders/{id}/received)."
    )
    standing_url: str


class StandingCreatedOut(StandingOrderOut):
    standing_token: str = Field(
        description="Bearer token for GET and DELETE /api/standing-orders/{id}: shown here only."
    )
    webhook_secret: str | None = Field(
        default=None, description="The webhook's signing secret (whsec_…): shown here only."
    )


StandingId = Annotated[
    str, Path(pattern=ID_PATTERN, description="The standing order's id (so_...).")
]


def standing_out(shop: Shop, v: standing.View) -> StandingOrderOut:
    s = v.standing
    order = None
    if v.order is not None and v.order_token is not None:
        order = get_order(v.order.id, shop, v.order_token)
    return StandingOrderOut(
        standing_id=s.id,
        status=s.status,
        wallet=s.wallet,
        terms=StandingTermsOut(
            credit_cents=s.amount_cents,
            max_price_per_dollar_cents=s.max_price_cents,
            min_discount_percent=s.min_discount_percent,
            expires_at=iso_z(s.valid_until),
            models=s.key_models,
            authorized_cents=v.amount_cents,
        ),
        created_at=iso_z(s.created_at),
        reason=s.reason,
        order_id=s.order_id,
        order_token=v.order_token,
        order=order,
        standing_url=f"{shop.settings.public_url}/api/standing-orders/{s.id}",
    )


@router.post(
    "/standing-orders",
    response_model=StandingCreatedOut,
    status_code=201,
    responses={
        402: {
            "model": X402RequiredOut,
            "description": "Sign an authorization of `accepts[0].amount` (X at your limit "
            "price) valid until expires_at and send it in PAYMENT-SIGNATURE. It is verified, "
            "not settled: nothing moves unless the order fires.",
        },
        **documented(400, 404, 413, 422, 429, 503),
    },
)
def create_standing_order(
    body: StandingIn,
    request: Request,
    shop: ShopDep,
    payment_signature: PaymentSignature = None,
) -> Response:
    """Leave a standing order: buy ``credit_cents`` of credit the first moment the price of
    $1 is at most ``max_price_per_dollar_cents`` (or the discount at least
    ``min_discount_percent``), before ``expires_at``. Paid by an x402 authorization that is
    settled only if it fires; cancel it with DELETE while it waits."""
    gateway = x402_gateway(shop)
    limiter(request).check("order", client_id(request), shop.settings.orders_per_minute)
    now = shop.clock()
    list_cents = standing.list_cents_now(shop.db, rules=shop.rules, now=now)
    terms = standing.parse_terms(
        rules=shop.rules,
        credit_cents=body.credit_cents,
        max_price_per_dollar_cents=body.max_price_per_dollar_cents,
        min_discount_percent=body.min_discount_percent,
        expires_at=body.expires_at,
        key_models=body.models,
        list_cents=list_cents,
        now=now,
    )
    if body.models == "all" and not shop.rules.allow_all_models:
        raise InvalidInput(
            'this shop sells keys for private models only: send "models": "private"',
            field="models",
        )
    outcome = standing.create(
        db=shop.db,
        rules=shop.rules,
        x402=gateway,
        box=shop.box,
        token_key=shop.token_key,
        terms=terms,
        list_cents=list_cents,
        header=payment_signature,
        url=f"{shop.settings.public_url}/api/standing-orders",
        webhook_url=body.webhook_url,
        webhook_policy=webhook_policy(shop),
        now=now,
    )
    if isinstance(outcome, x402flow.PaymentNeeded):
        return payment_required(outcome, gateway)
    view = standing.view(
        db=shop.db, token_key=shop.token_key, standing_id=outcome.standing.id, token=outcome.token
    )
    out = StandingCreatedOut(
        **standing_out(shop, view).model_dump(),
        standing_token=outcome.token,
        webhook_secret=outcome.webhook_secret,
    )
    return JSONResponse(out.model_dump(), status_code=201)


@router.get(
    "/standing-orders/{standing_id}",
    response_model=StandingOrderOut,
    responses=documented(404, 422),
)
def get_standing_order(
    standing_id: StandingId, shop: ShopDep, token: Annotated[str, Depends(bearer)]
) -> StandingOrderOut:
    """The standing order (Bearer: its standing_token); once fired, its order and key."""
    v = standing.view(db=shop.db, token_key=shop.token_key, standing_id=standing_id, token=token)
    return standing_out(shop, v)


@router.delete(
    "/standing-orders/{standing_id}",
    response_model=StandingOrderOut,
    responses=documented(404, 409, 422),
)
def cancel_standing_order(
    standing_id: StandingId, shop: ShopDep, token: Annotated[str, Depends(bearer)]
) -> StandingOrderOut:
    """Cancel a waiting standing order: its authorization is never settled. 409 once it has
    fired (or ended otherwise); cancelling a cancelled one again changes nothing."""
    v = standing.cancel(
        db=shop.db, token_key=shop.token_key, standing_id=standing_id, token=token, now=shop.clock()
    )
    return standing_out(shop, v)


class WalletStandingOut(StandingOrderOut):
    standing_token: str = Field(description="Bearer token for GET and DELETE of this one.")


class WalletStandingListOut(BaseModel):
    wallet: str
    standing_orders: list[WalletStandingOut]


@router.get(
    "/wallet/standing-orders", response_model=WalletStandingListOut, responses=SIWX_RESPONSES
)
def wallet_standing_orders(request: Request, shop: ShopDep) -> Any:
    """The standing orders of the wallet that signs in (x402 sign-in-with-x), newest first,
    each with its standing_token (lost the 201? this shows it again)."""
    limiter(request).check("quote", client_id(request), shop.settings.quotes_per_minute)
    who = signed_in(request, shop)
    if isinstance(who, Response):
        return who
    out = []
    for row in standing.of_wallet(shop.db, wallet=who):
        token = standing.standing_token(row.id, token_key=shop.token_key)
        v = standing.view(db=shop.db, token_key=shop.token_key, standing_id=row.id, token=token)
        out.append(WalletStandingOut(**standing_out(shop, v).model_dump(), standing_token=token))
    return WalletStandingListOut(wallet=who, standing_orders=out)
