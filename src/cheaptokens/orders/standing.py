"""Standing orders: "buy $X of credit the first moment the price is at or below P (or the
discount at least D %), before T", backed by an x402 authorization the shop settles only then.

The life of one (``StandingOrder.status``)::

    waiting    created: the authorization was verified (nothing moved), kept unsettled
    fired      the condition held and stock was there: its order was placed and paid by the
               authorization in one transaction (credit sold, the key's job queued); the
               worker makes the key, settles, stores the key (``key.ready`` to its webhook)
    cancelled  the agent cancelled it while it waited
    expired    T passed without the condition holding (or without stock)
    failed     the authorization no longer settles (the wallet was emptied, its nonce used
               elsewhere): no key, nothing charged

``waiting`` leaves by exactly one conditional UPDATE (``WHERE status = 'waiting'``): firing,
cancelling and expiring cannot both win. Firing reserves and sells capacity in the same
transaction as that UPDATE, through the same inventory path as every sale, so many standing
orders firing at once cannot sell more than there is.

**What the authorization pays, and for what** (docs/payments.md, "Standing orders"). x402's
``exact`` scheme moves exactly the amount signed, so the authorization is for the ceiling
``A = floor(X × P / 100)`` cents — X cents of credit at the limit price P per $1 (with a
discount limit D: ``P = list × (1 − D/100)`` of the curve in force when it was made). When it
fires at a price ``p ≤ P`` per $1, the shop settles A and the key holds **the most credit A
buys at p** (at least X; the extra is what the lower price leaves over), as far as the
maximum order and one account's stock allow. The buyer never pays more than signed, never
gets less than X, and never pays more per $1 than P.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from x402.schemas import PaymentPayload, PaymentRequirements

from cheaptokens import inventory, jobs
from cheaptokens.db import Database
from cheaptokens.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    ShopError,
    SoldOut,
)
from cheaptokens.models import Order, StandingOrder, X402Payment
from cheaptokens.money import format_usd
from cheaptokens.orders import events, published, quotes, transitions, webhooks
from cheaptokens.orders.ids import order_token
from cheaptokens.orders.rules import X402_PROVIDER, ShopRules
from cheaptokens.orders.x402 import (
    PaymentNeeded,
    claim_payment,
    payment_id,
    read_payment,
    reason_text,
    verify_payment,
)
from cheaptokens.payments.errors import PaymentProviderUnavailable
from cheaptokens.payments.x402 import (
    PaymentRefused,
    X402Gateway,
    authorization_of,
    checksum_address,
)
from cheaptokens.pricing.curve import (
    PRICING_CONTEXT,
    PricingParams,
    price_fraction,
    quote_price_cents,
)
from cheaptokens.secretbox import SecretBox, hash_token, token_matches
from cheaptokens.times import Clock, iso_z, next_midnight

log = logging.getLogger(__name__)

WAITING: Final = "waiting"
FIRED: Final = "fired"
CANCELLED: Final = "cancelled"
EXPIRED: Final = "expired"
FAILED: Final = "failed"
STATUSES: Final = (WAITING, FIRED, CANCELLED, EXPIRED, FAILED)

#: A standing order must wait at least this long (else buy now with ``POST /api/buy``).
MIN_WAIT: Final = timedelta(seconds=60)
#: The authorization's validity beyond T that the 402 asks for (time to sign and send it).
SIGNING_SLACK_SECONDS: Final = 120
#: A standing order does not fire when its authorization lapses within this long: the key
#: could not be paid for in time (it waits on, and expires at T).
FIRE_MARGIN: Final = timedelta(seconds=30)
#: At most this many standing orders wait per wallet at once (each one's authorization is
#: checked against the wallet's balance alone, so one balance could back many).
MAX_WAITING_PER_WALLET: Final = 5

#: Why a standing order was refused, in the words of :data:`cheaptokens.orders.x402.REASONS`.
REASONS: Final = {
    "authorization_too_short": "the authorization must stay valid until expires_at",
    "too_many_waiting": (
        f"this wallet already has {MAX_WAITING_PER_WALLET} standing orders waiting: cancel one "
        "or wait for one to fire"
    ),
}


def _text(code: str) -> str:
    return REASONS.get(code) or reason_text(code)


# ----------------------------------------------------------------------------- terms
@dataclass(frozen=True, slots=True)
class Terms:
    """What the agent asked for, checked."""

    credit_cents: int
    max_price_cents: Decimal | None  # per $1 of credit, in cents
    min_discount_percent: Decimal | None
    expires_at: datetime
    key_models: str = "private"

    def limit_fraction(self, list_cents: int) -> Decimal:
        """The condition as a price fraction of list: fire when the curve's is at most this."""
        with localcontext(PRICING_CONTEXT):
            if self.max_price_cents is not None:
                return self.max_price_cents / list_cents
            assert self.min_discount_percent is not None
            return 1 - self.min_discount_percent / 100

    def extra(self) -> dict[str, object]:
        """The terms inside the payment requirement (the signed ``accepted`` repeats them)."""
        out: dict[str, object] = {
            "standing": True,
            "credit_cents": self.credit_cents,
            "expires_at": iso_z(self.expires_at),
            "models": self.key_models,
        }
        if self.max_price_cents is not None:
            out["max_price_per_dollar_cents"] = _dec(self.max_price_cents)
        if self.min_discount_percent is not None:
            out["min_discount_percent"] = _dec(self.min_discount_percent)
        return out


def _dec(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _decimal(value: object, *, field: str, places: int) -> Decimal:
    """A whole number or a decimal string with at most ``places`` decimals (no floats: money)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput(
            f'{field} must be a whole number or a decimal string such as "42.5"', field=field
        )
    try:
        number = Decimal(value) if isinstance(value, int) else Decimal(value.strip())
    except InvalidOperation:
        raise InvalidInput(f"{field} must be a decimal number", field=field) from None
    if not number.is_finite():
        raise InvalidInput(f"{field} must be a decimal number", field=field)
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        raise InvalidInput(f"{field} may have at most {places} decimals", field=field)
    return number


def parse_expiry(text: object, *, now: datetime) -> datetime:
    if not isinstance(text, str):
        raise InvalidInput("expires_at must be a UTC time such as 2026-11-26T18:00:00Z")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            "expires_at must be a UTC time such as 2026-11-26T18:00:00Z", field="expires_at"
        ) from None
    if when.tzinfo is None or when.utcoffset() != timedelta(0):
        raise InvalidInput("expires_at must be in UTC (end it with Z)", field="expires_at")
    when = when.astimezone(UTC)
    if when > next_midnight(now):
        raise InvalidInput(
            f"expires_at may be at most the next 00:00 UTC ({iso_z(next_midnight(now))}): "
            "credit is sold for today only",
            field="expires_at",
        )
    if when < now + MIN_WAIT:
        raise InvalidInput(
            f"expires_at must be at least {int(MIN_WAIT.total_seconds())} seconds ahead "
            "(to buy now, use POST /api/buy)",
            field="expires_at",
        )
    return when


def parse_terms(
    *,
    rules: ShopRules,
    credit_cents: object,
    max_price_per_dollar_cents: object,
    min_discount_percent: object,
    expires_at: object,
    key_models: str,
    list_cents: int,
    now: datetime,
) -> Terms:
    """The terms, or :class:`InvalidInput` naming the field that is wrong."""
    credit = quotes.validate_amount(credit_cents, rules=rules)
    if (max_price_per_dollar_cents is None) == (min_discount_percent is None):
        raise InvalidInput(
            "send exactly one of max_price_per_dollar_cents or min_discount_percent",
            field="max_price_per_dollar_cents",
        )
    price = discount = None
    if max_price_per_dollar_cents is not None:
        price = _decimal(max_price_per_dollar_cents, field="max_price_per_dollar_cents", places=4)
        if not (0 < price <= list_cents):
            raise InvalidInput(
                f"max_price_per_dollar_cents must be above 0 and at most the list price "
                f"({list_cents} cents per $1)",
                field="max_price_per_dollar_cents",
            )
    else:
        discount = _decimal(min_discount_percent, field="min_discount_percent", places=2)
        if not (0 <= discount < 100):
            raise InvalidInput(
                "min_discount_percent must be at least 0 and below 100",
                field="min_discount_percent",
            )
    if key_models == "all" and credit < rules.all_models_min_order_cents:
        raise InvalidInput(
            f"a key for all models needs an order of at least "
            f"{rules.all_models_min_order_cents} cents",
            field="models",
        )
    when = parse_expiry(expires_at, now=now)
    terms = Terms(credit, price, discount, when, key_models)
    if ceiling_cents(terms, list_cents=list_cents) < 1:
        raise InvalidInput(
            "at that limit the credit would cost less than 1 cent: ask for more credit or a "
            "higher limit",
            field="max_price_per_dollar_cents" if price is not None else "min_discount_percent",
        )
    return terms


def ceiling_cents(terms: Terms, *, list_cents: int) -> int:
    """What the authorization is for: X cents of credit at the limit price, rounded down."""
    with localcontext(PRICING_CONTEXT):
        exact = terms.credit_cents * list_cents * terms.limit_fraction(list_cents) / 100
        return int(exact.to_integral_value(rounding=ROUND_FLOOR))


def credit_for(
    *,
    amount_cents: int,
    params: PricingParams,
    now: datetime,
    remaining_cents: int,
) -> int:
    """The most credit ``amount_cents`` buys at the curve's price now (``quote_price_cents``
    of it is at most the amount; one cent more of credit would cost more)."""
    fraction = price_fraction(params, now=now, remaining_cents=remaining_cents)
    with localcontext(PRICING_CONTEXT):
        guess = int(
            ((amount_cents + 1) * 100 / (params.list_cents * fraction)).to_integral_value(
                rounding=ROUND_FLOOR
            )
        )

    def price(c: int) -> int:
        return quote_price_cents(params, now=now, remaining_cents=remaining_cents, credit_cents=c)

    credit = max(0, guess)
    while credit > 0 and price(credit) > amount_cents:
        credit -= 1
    while price(credit + 1) <= amount_cents:
        credit += 1
    return credit


def _timeout_for(expires_at: datetime, now: datetime) -> int:
    return max(1, math.ceil((expires_at - now).total_seconds())) + SIGNING_SLACK_SECONDS


def requirement_for(
    x402: X402Gateway, terms: Terms, *, amount_cents: int, timeout_seconds: int
) -> PaymentRequirements:
    return x402.requirements(
        amount_cents=amount_cents, extra=terms.extra(), timeout_seconds=timeout_seconds
    )


def _description(terms: Terms, amount_cents: int) -> str:
    return (
        f"A standing order: {format_usd(terms.credit_cents)} (or more) of Venice.ai credit for "
        f"{format_usd(amount_cents)}, bought the first moment the price allows, before "
        f"{iso_z(terms.expires_at)}; nothing is charged unless it fires"
    )


# ----------------------------------------------------------------------------- create
@dataclass(frozen=True, slots=True)
class Created:
    standing: StandingOrder
    token: str
    #: the webhook's signing secret (shown once, in the 201)
    webhook_secret: str | None


def new_standing_id() -> str:
    return "so_" + uuid.uuid4().hex


def standing_token(standing_id: str, *, token_key: bytes) -> str:
    """The bearer secret of a standing order: an HMAC of its id, as an order's token is, so
    the wallet that signs in can be shown it again (the table keeps only its hash)."""
    mac = hmac.new(token_key, b"standing-token\x00" + standing_id.encode(), hashlib.sha256)
    return "sot_" + base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def secret_context(standing_id: str) -> str:
    return f"{standing_id}:webhook"


def list_cents_now(db: Database, *, rules: ShopRules, now: datetime) -> int:
    with db.begin() as session:
        supply = quotes.open_day(session, rules=rules, now=now)
        params, _ = published.in_force(
            session, now=now, capacity_cents=supply.capacity_cents, rules=rules
        )
        return params.list_cents


def create(
    *,
    db: Database,
    rules: ShopRules,
    x402: X402Gateway,
    box: SecretBox,
    token_key: bytes,
    terms: Terms,
    list_cents: int,
    header: str | None,
    url: str,
    webhook_url: str | None,
    webhook_policy: webhooks.UrlPolicy | None,
    now: datetime,
) -> PaymentNeeded | Created:
    """``POST /api/standing-orders``: without a payment the 402 asks for an authorization of
    the ceiling valid until T; with one, it is verified (nothing moves) and kept."""
    amount = ceiling_cents(terms, list_cents=list_cents)

    def needed(code: str | None = None, timeout: int | None = None) -> PaymentNeeded:
        requirement = requirement_for(
            x402,
            terms,
            amount_cents=amount,
            timeout_seconds=timeout or _timeout_for(terms.expires_at, now),
        )
        return PaymentNeeded(
            x402.payment_required(
                accepts=[requirement],
                url=url,
                description=_description(terms, amount),
                error=f"{code}: {_text(code)}" if code else None,
            ),
            code,
        )

    if webhook_url is not None:
        if webhook_policy is None:
            raise InvalidInput("this shop does not take webhooks here", field="webhook_url")
        webhooks.check(webhook_url, webhook_policy)
    if header is None:
        return needed()
    read = read_payment(x402, header)
    if isinstance(read, str):
        return needed(read)
    payload, wallet = read
    try:
        auth = authorization_of(payload)
        valid_before = datetime.fromtimestamp(int(auth["validBefore"]), UTC)
    except PaymentRefused as exc:
        return needed(exc.code or "invalid_payload")
    except (ValueError, OverflowError, OSError):
        return needed("invalid_payload")
    t = x402.terms
    # The 402's maxTimeoutSeconds depended on when it was asked; any that covers T will do.
    timeout = payload.accepted.max_timeout_seconds
    if not isinstance(timeout, int) or not (1 <= timeout <= 2 * 86_400):
        return needed("payment_mismatch")
    requirement = requirement_for(x402, terms, amount_cents=amount, timeout_seconds=timeout)
    if not x402.matches(requirement, payload):
        return needed("payment_mismatch")
    if valid_before < terms.expires_at:
        return needed("authorization_too_short")

    sid = new_standing_id()
    pid = payment_id(network=t.network, asset=t.asset, payer=wallet.address, nonce=wallet.nonce)
    try:
        with db.begin() as session:
            waiting = session.scalar(
                select(func.count())
                .select_from(StandingOrder)
                .where(StandingOrder.wallet == wallet.address, StandingOrder.status == WAITING)
            )
            if (waiting or 0) >= MAX_WAITING_PER_WALLET:
                return needed("too_many_waiting", timeout)
            if session.scalar(select(StandingOrder.id).where(StandingOrder.payment_id == pid)):
                return needed("payment_replayed", timeout)
            if not claim_payment(
                session,
                pid=pid,
                wallet=wallet,
                payload=payload,
                requirement=requirement,
                amount_cents=amount,
                valid_before=valid_before,
                now=now,
                standing_id=sid,
            ):
                return needed("payment_replayed", timeout)
    except IntegrityError:  # the same authorization, at the same moment, in another request
        return needed("payment_replayed", timeout)

    refused = verify_payment(
        x402, payload, requirement, wallet, void=lambda why: _void(db, pid=pid, reason=why)
    )
    if refused is not None:
        return needed(refused, timeout)

    token = standing_token(sid, token_key=token_key)
    secret = events.new_secret() if webhook_url is not None else None
    try:
        with db.begin() as session:
            row = session.get(X402Payment, pid, with_for_update=True)
            if row is None or row.status != "verifying" or row.standing_id != sid:
                return needed("payment_replayed", timeout)
            row.status = "authorized"
            standing = StandingOrder(
                id=sid,
                token_hash=hash_token(token),
                wallet=wallet.address,
                day=now.date(),
                amount_cents=terms.credit_cents,
                max_price_cents=(
                    _dec(terms.max_price_cents) if terms.max_price_cents is not None else None
                ),
                min_discount_percent=(
                    _dec(terms.min_discount_percent)
                    if terms.min_discount_percent is not None
                    else None
                ),
                valid_until=terms.expires_at,
                key_models=terms.key_models,
                status=WAITING,
                payment_id=pid,
                webhook_url=webhook_url,
                webhook_secret=(
                    box.seal(secret, context=secret_context(sid)) if secret is not None else None
                ),
                created_at=now,
                updated_at=now,
            )
            session.add(standing)
    except IntegrityError:
        return needed("payment_replayed", timeout)
    return Created(standing, token, secret)


def _void(db: Database, *, pid: str, reason: str) -> None:
    with db.begin() as session:
        row = session.get(X402Payment, pid, with_for_update=True)
        if row is not None and row.status == "verifying":
            row.status, row.reason = "void", reason


def terms_of(row: StandingOrder) -> Terms:
    return Terms(
        credit_cents=row.amount_cents,
        max_price_cents=Decimal(row.max_price_cents) if row.max_price_cents else None,
        min_discount_percent=(
            Decimal(row.min_discount_percent) if row.min_discount_percent else None
        ),
        expires_at=row.valid_until,
        key_models=row.key_models,
    )


# ----------------------------------------------------------------------------- look, cancel
@dataclass(frozen=True, slots=True)
class View:
    standing: StandingOrder
    #: what the authorization pays when it fires (cents)
    amount_cents: int
    #: the order it placed, and that order's bearer token (once fired)
    order: Order | None
    order_token: str | None


def _authorize(session: Session, *, standing_id: str, token: str) -> StandingOrder:
    row = session.get(StandingOrder, standing_id)
    stored = row.token_hash if row is not None else "0" * 64
    if not token_matches(token, stored) or row is None:
        raise NotFound("no standing order with that id and token")
    return row


def view(*, db: Database, token_key: bytes, standing_id: str, token: str) -> View:
    """The standing order (the bearer token is its ``standing_token``)."""
    with db.read() as session:
        row = _authorize(session, standing_id=standing_id, token=token)
        payment = session.get(X402Payment, row.payment_id)
        order = session.get(Order, row.order_id) if row.order_id else None
        return View(
            standing=row,
            amount_cents=payment.amount_cents if payment is not None else 0,
            order=order,
            order_token=order_token(order.id, token_key=token_key) if order else None,
        )


def of_wallet(db: Database, *, wallet: str, limit: int = 200) -> list[StandingOrder]:
    """The standing orders ``wallet`` left (it signed in), newest first."""
    address = checksum_address(wallet) or ""
    with db.read() as session:
        return list(
            session.scalars(
                select(StandingOrder)
                .where(StandingOrder.wallet == address)
                .order_by(StandingOrder.created_at.desc())
                .limit(limit)
            ).all()
        )


def cancel(*, db: Database, token_key: bytes, standing_id: str, token: str, now: datetime) -> View:
    """Cancel a waiting standing order: its authorization is never settled. One conditional
    UPDATE, so a cancel and a firing cannot both win; a fired one answers 409."""
    with db.begin() as session:
        row = _authorize(session, standing_id=standing_id, token=token)
        won = _leave_waiting(session, standing_id=row.id, to=CANCELLED, reason="cancelled", now=now)
        if not won:
            status = session.scalar(select(StandingOrder.status).where(StandingOrder.id == row.id))
            if status != CANCELLED:
                raise Conflict(
                    f"this standing order is {status}: only a waiting one can be cancelled",
                    field="status",
                )
    return view(db=db, token_key=token_key, standing_id=standing_id, token=token)


def _leave_waiting(
    session: Session, *, standing_id: str, to: str, reason: str, now: datetime
) -> bool:
    """waiting -> ``to`` (cancelled, expired, failed), the authorization voided (it will never
    be settled). False if it was no longer waiting."""
    moved = session.execute(
        update(StandingOrder)
        .where(StandingOrder.id == standing_id, StandingOrder.status == WAITING)
        .values(status=to, reason=reason, updated_at=now)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.execute(
        update(X402Payment)
        .where(X402Payment.standing_id == standing_id, X402Payment.status == "authorized")
        .values(status="void", reason=f"standing order {to}")
    )
    return True


def expire_due(*, db: Database, now: datetime, limit: int = 500) -> int:
    """Waiting standing orders whose T has passed end ``expired``: nothing is charged."""
    with db.begin() as session:
        due = session.scalars(
            select(StandingOrder.id)
            .where(StandingOrder.status == WAITING, StandingOrder.valid_until <= now)
            .limit(limit)
        ).all()
        return sum(
            _leave_waiting(
                session, standing_id=sid, to=EXPIRED, reason="the price never allowed it", now=now
            )
            for sid in due
        )


# ----------------------------------------------------------------------------- fire
@dataclass(frozen=True, slots=True)
class _Candidate:
    id: str
    limit: Decimal
    created_at: datetime


def candidates(session: Session, *, now: datetime, list_cents: int) -> list[_Candidate]:
    """Waiting standing orders, highest limit first, oldest first among equals."""
    rows = session.scalars(
        select(StandingOrder).where(
            StandingOrder.status == WAITING, StandingOrder.valid_until > now
        )
    ).all()
    found = [_Candidate(r.id, terms_of(r).limit_fraction(list_cents), r.created_at) for r in rows]
    found.sort(key=lambda c: (-c.limit, c.created_at, c.id))
    return found


def price_now(db: Database, *, rules: ShopRules, now: datetime) -> tuple[Decimal, int] | None:
    """(price fraction, list cents) now; None before today's supply is known."""
    with db.read() as session:
        supply = inventory.supply(session, day=now.date())
        if not supply.capacity_cents:
            return None
        found = published.find_in_force(session, now=now)
    if found is None:
        with db.begin() as session:
            supply = quotes.open_day(session, rules=rules, now=now)
            found = published.in_force(
                session, now=now, capacity_cents=supply.capacity_cents, rules=rules
            )
    params, _ = found
    return price_fraction(params, now=now, remaining_cents=supply.unsold_cents), params.list_cents


def fire_due(
    *,
    db: Database,
    rules: ShopRules,
    x402: X402Gateway,
    box: SecretBox,
    token_key: bytes,
    clock: Clock,
    limit: int = 200,
) -> int:
    """Fire every waiting standing order whose condition holds now and whose credit is in
    stock, highest limit first (oldest first among equals). Safe to run in many workers at
    once. Returns how many fired."""
    now = clock()
    seen = price_now(db, rules=rules, now=now)
    if seen is None:
        return 0
    fraction, list_cents = seen
    with db.read() as session:
        due = [
            c for c in candidates(session, now=now, list_cents=list_cents) if c.limit >= fraction
        ][:limit]
    fired = 0
    for candidate in due:
        try:
            if fire_one(
                db=db,
                rules=rules,
                x402=x402,
                box=box,
                token_key=token_key,
                clock=clock,
                standing_id=candidate.id,
            ):
                fired += 1
        except PaymentProviderUnavailable:
            log.info("standing orders: the x402 facilitator is unreachable; next round")
            break
        except Exception:  # one standing order's trouble must not keep the others waiting
            log.exception("standing order %s: firing failed; it is tried again", candidate.id)
    return fired


def _stored(row: X402Payment) -> tuple[PaymentPayload, PaymentRequirements]:
    return (
        PaymentPayload.model_validate_json(row.payload),
        PaymentRequirements.model_validate_json(row.requirements),
    )


def fire_one(
    *,
    db: Database,
    rules: ShopRules,
    x402: X402Gateway,
    box: SecretBox,
    token_key: bytes,
    clock: Clock,
    standing_id: str,
) -> bool:
    """Fire ``standing_id`` if it still waits and its condition holds now; True if it did.

    The authorization is verified again first (the wallet may have been emptied since): one
    that no longer would settle ends the standing order ``failed`` without taking stock.
    Then one transaction claims it (waiting -> fired), reserves and sells the credit, places
    the order paid by the authorization and queues its key; the worker's provisioning job
    makes the key, settles and stores it, as for ``POST /api/buy``."""
    now = clock()
    with db.read() as session:
        row = session.get(StandingOrder, standing_id)
        payment = session.get(X402Payment, row.payment_id) if row is not None else None
        supply = inventory.supply(session, day=now.date())
        found = published.find_in_force(session, now=now)
        if row is None or payment is None or found is None or not supply.capacity_cents:
            return False
        # Look before asking the facilitator: most rounds find nothing to fire.
        if (
            _fireable(
                row,
                payment,
                supply=supply,
                params=found[0],
                max_order_cents=rules.max_order_cents,
                now=now,
            )
            is None
        ):
            return False
        payload, requirement = _stored(payment)
        wallet = row.wallet
    verdict = x402.verify(payload, requirement)  # PaymentProviderUnavailable: next round
    if not verdict.valid:
        with db.begin() as session:
            _leave_waiting(
                session,
                standing_id=standing_id,
                to=FAILED,
                reason=f"the authorization no longer settles: {_text(verdict.reason or '')}",
                now=clock(),
            )
        return False
    try:
        with db.begin() as session:
            return _claim_and_place(
                session,
                rules=rules,
                box=box,
                token_key=token_key,
                standing_id=standing_id,
                wallet=wallet,
                now=clock(),
            )
    except (SoldOut, _Undo):  # another sale took the stock a moment ago: it waits on
        return False
    except ShopError as exc:  # e.g. the wallet may not buy today (its keys overspent)
        log.info("standing order %s cannot fire: %s", standing_id, exc.message)
        with db.begin() as session:
            _leave_waiting(
                session, standing_id=standing_id, to=FAILED, reason=exc.message, now=clock()
            )
        return False


class _Undo(Exception):
    """Roll the firing transaction back (the claim with it)."""


def _fireable(
    row: StandingOrder,
    payment: X402Payment,
    *,
    supply: inventory.Supply,
    params: PricingParams,
    max_order_cents: int,
    now: datetime,
) -> int | None:
    """The credit the standing order buys if it fires now; None while its price has not come,
    the stock is short (it waits on) or its authorization is about to lapse."""
    if row.status != WAITING or payment.status != "authorized" or row.valid_until <= now:
        return None
    if payment.valid_before <= now + FIRE_MARGIN:
        return None
    terms = terms_of(row)
    remaining = supply.unsold_cents
    fraction = price_fraction(params, now=now, remaining_cents=remaining)
    if fraction > terms.limit_fraction(params.list_cents):
        return None
    credit = min(
        credit_for(
            amount_cents=payment.amount_cents, params=params, now=now, remaining_cents=remaining
        ),
        max_order_cents,
        max((room for _, room in supply.rooms), default=0),
    )
    # Short of X: not enough stock on one account (or the list price rose): it waits.
    return credit if credit >= terms.credit_cents else None


def _claim_and_place(
    session: Session,
    *,
    rules: ShopRules,
    box: SecretBox,
    token_key: bytes,
    standing_id: str,
    wallet: str,
    now: datetime,
) -> bool:
    row = session.get(StandingOrder, standing_id)
    payment = session.scalar(select(X402Payment).where(X402Payment.standing_id == standing_id))
    if row is None or payment is None:
        return False
    supply = quotes.open_day(session, rules=rules, now=now)
    params, _ = published.in_force(
        session, now=now, capacity_cents=supply.capacity_cents, rules=rules
    )
    credit = _fireable(
        row, payment, supply=supply, params=params, max_order_cents=rules.max_order_cents, now=now
    )
    if credit is None:
        return False
    amount = payment.amount_cents
    # The claim: exactly one of fire / cancel / expire / another worker's fire wins.
    claimed = session.execute(
        update(StandingOrder)
        .where(
            StandingOrder.id == standing_id,
            StandingOrder.status == WAITING,
            StandingOrder.valid_until > now,
        )
        .values(status=FIRED, updated_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    # Rows are locked in one order everywhere: the standing order, then its authorization
    # (cancel and expiry do the same), so a cancel racing a firing cannot deadlock.
    session.refresh(payment, with_for_update=True)
    if payment.status != "authorized":
        raise _Undo("the authorization is no longer usable")
    quote = quotes.create_quote(
        session, rules=rules, credit_cents=credit, now=now, price_cents=amount
    )
    placed = transitions.place_order(
        session,
        rules=rules,
        token_key=token_key,
        provider=X402_PROVIDER,
        now=now,
        quote_id=quote.id,
        client=wallet.lower(),
        key_models=row.key_models,
    )
    # place_order answers a plain value (a Core INSERT): the row itself is loaded to change it
    order = session.get(Order, placed.order.id, with_for_update=True)
    assert order is not None
    transitions.payment_authorized(
        session, order=order, payer=wallet, payment_ref=f"x402:{payment.id}", now=now
    )
    payment.order_id = order.id
    session.execute(
        update(StandingOrder).where(StandingOrder.id == standing_id).values(order_id=order.id)
    )
    if row.webhook_url and row.webhook_secret is not None:
        events.register(
            session,
            order_id=order.id,
            url=row.webhook_url,
            box=box,
            now=now,
            secret=box.open(row.webhook_secret, context=secret_context(standing_id)),
        )
    jobs.enqueue(session, kind=jobs.PROVISION, order_id=order.id, now=now)
    return True
