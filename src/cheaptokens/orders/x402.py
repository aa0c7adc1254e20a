"""x402 purchases: an agent buys a key in one call, paying with a signed USDC authorization.

``POST /api/buy`` without a payment answers 402 with the payment requirements of a fresh quote
(the same quote, reservation and price lock as ``POST /api/quotes``; the requirement names the
quote in ``extra.quote_id``). Sent again with the signed payment (``PAYMENT-SIGNATURE``):

1. the quote the payment names is used if it is still open for this amount; if it lapsed,
   the credit is priced again now, and a payment signed for any other price than that is
   refused (402 ``price_changed``, with the new requirements): the buyer never pays a price
   that no longer holds, and never more than they signed;
2. one transaction places the order (the quote's reservation moves to it; the buyer is the
   paying wallet, so its overshoot strikes count) and records the authorization by its
   (network, asset, payer, nonce): the same authorization a second time is refused
   (``payment_replayed``) — it can pay for one order only;
3. the facilitator verifies it (nothing moves); a refusal cancels the order (402, with why);
4. the order is paid by authorization (credit sold) and its provisioning job is queued *and
   leased to this request*, which runs the worker's own key-making steps
   (:mod:`cheaptokens.orders.keymaking`, a warm pool key first): make the key, **settle**,
   then record the key. If settlement fails the key is deleted and the order cancelled (402);
   if the request dies, the lease lapses and the worker finishes the same job;
5. the answer is 200 with the order and its key, and the settlement in ``PAYMENT-RESPONSE``;
   or 202 (poll ``GET /api/orders/{id}``) if the key could not be made within
   ``x402_sync_seconds`` — the worker carries on.

A ``webhook_url`` in the body is checked (:func:`cheaptokens.orders.webhooks.check`) on every
call, the unpaid one too, so a URL the shop refuses is a 400 before anything is signed. The
webhook and its signing secret are made in step 2's transaction, with the order: the secret is
in that one answer (``Bought.webhook_secret``). A replayed payment is refused in step 2, so it
never reaches a second secret, and no read of the order shows it.

:func:`capture_payment` is the settle step, for the request and for the worker alike.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from x402.mechanisms.evm.constants import ERR_INSUFFICIENT_BALANCE, ERR_NONCE_ALREADY_USED
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements

from cheaptokens import jobs
from cheaptokens.db import Database
from cheaptokens.errors import InvalidInput, QuoteExpired, ServiceUnavailable
from cheaptokens.models import Order, Quote, Topup, X402Payment
from cheaptokens.money import format_usd
from cheaptokens.orders import events, keymaking, quotes, topups, transitions, webhooks
from cheaptokens.orders import state as st
from cheaptokens.orders.ids import is_topup_id
from cheaptokens.orders.keymaking import Captured
from cheaptokens.orders.rules import X402_PROVIDER, ShopRules
from cheaptokens.payments.errors import PaymentProviderUnavailable
from cheaptokens.payments.x402 import (
    PaymentRefused,
    SettlementUnknown,
    X402Gateway,
    authorization_of,
    checksum_address,
    units_to_cents,
)
from cheaptokens.secretbox import SecretBox
from cheaptokens.times import Clock
from cheaptokens.venice.types import VeniceGateway

log = logging.getLogger(__name__)

#: A top-up whose cap could not be raised (the key went away, moved, or its day ended).
NOT_APPLIED = "topup_not_applied"

#: Why a payment was refused, in words an agent can act on (x402's codes and the shop's).
REASONS: dict[str, str] = {
    ERR_INSUFFICIENT_BALANCE: "the wallet's USDC balance is below the price",
    "invalid_exact_evm_payload_authorization_valid_before": "the authorization has expired",
    "invalid_exact_evm_payload_authorization_valid_after": "the authorization is not valid yet",
    ERR_NONCE_ALREADY_USED: "this authorization was already used",
    "invalid_exact_evm_payload_recipient_mismatch": "the authorization pays another address",
    "invalid_exact_evm_payload_authorization_value_mismatch": (
        "the authorization is for another amount than the price"
    ),
    "invalid_exact_evm_payload_signature": "the signature does not match the authorization",
    "invalid_network": "the payment is for another network or asset",
    "payment_mismatch": (
        "the payment does not meet the requirements (network, asset, amount, payTo or "
        "timeout): pay one of `accepts` exactly"
    ),
    "price_changed": (
        "the quote this payment was signed for has lapsed and the price has changed: nothing "
        "was charged; sign the new requirements"
    ),
    "quote_used": "the quote this payment names was used by another payment: sign a new one",
    "payment_replayed": "this payment was already used for an order; it pays for one only",
    "invalid_payload": "the PAYMENT-SIGNATURE header is not an x402 payment payload",
    "invalid_version": "only x402 version 2 payments are taken",
    "payer_mismatch": "the facilitator names another payer than the authorization",
    "not_settled": "the payment did not settle; the key made for it was deleted",
    NOT_APPLIED: (
        "the key's cap could not be raised (the key is no longer live, moved, or its day "
        "ended): the authorization will not be settled; nothing was charged"
    ),
}


def reason_text(code: str | None) -> str:
    if not code:
        return "the payment was refused"
    return REASONS.get(code, code.replace("_", " "))


@dataclass(frozen=True, slots=True)
class PaymentNeeded:
    """Answer 402 with these requirements (a fresh quote's, unless the error says why)."""

    required: PaymentRequired
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Bought:
    """The order the payment bought; ``api_key`` is set once it is fulfilled (else poll)."""

    order: Order
    token: str
    api_key: str | None
    payment_header: str | None
    #: the order's webhook signing secret, in this answer only (None without a webhook)
    webhook_secret: str | None = None


@dataclass(frozen=True, slots=True)
class Wallet:
    """Who pays: the authorization's ``from`` (checksummed) and its nonce."""

    address: str
    nonce: str


def payment_id(*, network: str, asset: str, payer: str, nonce: str) -> str:
    """The key of an authorization: one per (network, asset, payer, nonce)."""
    text = f"{network}|{asset}|{payer}|{nonce}".lower()
    return hashlib.sha256(text.encode()).hexdigest()


def wallet_of(payload: PaymentPayload) -> Wallet:
    auth = authorization_of(payload)
    sender, nonce = checksum_address(auth["from"]), auth["nonce"]
    if sender is None or len(nonce) != 66 or not nonce.startswith("0x"):
        raise PaymentRefused(
            "the authorization's from or nonce is malformed", code="invalid_payload"
        )
    return Wallet(sender, nonce.lower())


def read_payment(x402: X402Gateway, header: str) -> tuple[PaymentPayload, Wallet] | str:
    """The payment a ``PAYMENT-SIGNATURE`` header carries and who pays it; or, when it cannot
    be one this shop takes (unreadable, malformed, another network or asset), the code to
    refuse it with. The purchase, the top-up and the standing order all start here."""
    try:
        payload = x402.parse(header)
        wallet = wallet_of(payload)
    except PaymentRefused as exc:
        return exc.code or "invalid_payload"
    terms = x402.terms
    if (
        payload.accepted.network != terms.network
        or payload.accepted.asset.lower() != terms.asset.lower()
    ):
        return "invalid_network"
    return payload, wallet


def verify_payment(
    x402: X402Gateway,
    payload: PaymentPayload,
    requirement: PaymentRequirements,
    wallet: Wallet,
    *,
    void: Callable[[str], None],
) -> str | None:
    """Ask the facilitator whether the claimed authorization would settle (nothing moves).

    None if it would, paid by ``wallet``; otherwise ``void(reason)`` has given back what the
    claim held and the reason is returned, for the 402. An unreachable facilitator is voided
    too, then :class:`ServiceUnavailable` (the buyer may try again: nothing was taken)."""
    try:
        verdict = x402.verify(payload, requirement)
    except PaymentProviderUnavailable as exc:
        void("facilitator unavailable")
        raise ServiceUnavailable(
            "the x402 facilitator cannot be reached; nothing was charged, try again"
        ) from exc
    if verdict.valid and (verdict.payer or "").lower() == wallet.address.lower():
        return None
    why = (verdict.reason or "refused") if not verdict.valid else "payer_mismatch"
    void(why)
    return why


def run_leased(
    *,
    db: Database,
    clock: Clock,
    lease: jobs.Lease,
    seconds: float,
    step: Callable[[], object],
    what: str,
) -> bool:
    """Run a job this request leased (``step``: the worker's own step for it) for at most
    ``seconds``, retrying as the worker would; then finish it, or hand it back to the worker
    to carry on. True if it finished."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            step()
        except jobs.Retry as exc:
            left = deadline - time.monotonic()
            if left > min(exc.delay, 1.0):
                time.sleep(min(exc.delay, 1.0))
                continue
            log.info("x402 %s: the worker carries on (%s)", what, exc)
            with db.begin() as session:
                jobs.retry_later(
                    session,
                    job_id=lease.job_id,
                    worker=lease.worker,
                    now=clock(),
                    delay=0,
                    error=str(exc),
                )
            return False
        with db.begin() as session:
            jobs.finish(session, job_id=lease.job_id, worker=lease.worker)
        return True


def requirements_for(x402: X402Gateway, quote: Quote, key_models: str) -> PaymentRequirements:
    """What paying for ``quote`` means: exactly its price, to the operator, naming the quote."""
    return x402.requirements(
        amount_cents=quote.price_cents,
        extra={"quote_id": quote.id, "credit_cents": quote.credit_cents, "models": key_models},
    )


def _description(credit_cents: int) -> str:
    return (
        f"{format_usd(credit_cents)} of Venice.ai credit as a Venice API key, valid until 00:00 UTC"
    )


def offer(
    *,
    db: Database,
    rules: ShopRules,
    x402: X402Gateway,
    credit_cents: int,
    key_models: str,
    client: str | None,
    url: str,
    now: datetime,
    code: str | None = None,
) -> PaymentNeeded:
    """A fresh quote for ``credit_cents`` (reserved, price locked) as x402 requirements."""
    with db.begin() as session:
        quote = quotes.create_quote(
            session, rules=rules, credit_cents=credit_cents, now=now, client=client
        )
        requirement = requirements_for(x402, quote, key_models)
    error = f"{code}: {reason_text(code)}" if code else None
    return PaymentNeeded(
        x402.payment_required(
            accepts=[requirement], url=url, description=_description(credit_cents), error=error
        ),
        code,
    )


def _refuse(
    code: str, requirement: PaymentRequirements, x402: X402Gateway, url: str, credit: int
) -> PaymentNeeded:
    return PaymentNeeded(
        x402.payment_required(
            accepts=[requirement],
            url=url,
            description=_description(credit),
            error=f"{code}: {reason_text(code)}",
        ),
        code,
    )


def _quote_for(
    session: Session,
    *,
    rules: ShopRules,
    payload: PaymentPayload,
    credit_cents: int,
    client: str,
    now: datetime,
) -> tuple[Quote, bool]:
    """The open quote the payment names, or (if it lapsed) a fresh one; True if fresh."""
    quote_id = (payload.accepted.extra or {}).get("quote_id")
    quote = (
        session.get(Quote, quote_id, with_for_update=True) if isinstance(quote_id, str) else None
    )
    if (
        quote is not None
        and quote.status == "open"
        and quote.valid_until > now
        and quote.credit_cents == credit_cents
    ):
        return quote, False
    fresh = quotes.create_quote(
        session, rules=rules, credit_cents=credit_cents, now=now, client=client
    )
    return fresh, True


def buy(
    *,
    db: Database,
    rules: ShopRules,
    gateways: dict[str, VeniceGateway],
    box: SecretBox,
    x402: X402Gateway,
    token_key: bytes,
    clock: Clock,
    credit_cents: int,
    key_models: str,
    header: str | None,
    client: str | None,
    url: str,
    worker: str,
    sync_seconds: float,
    webhook_url: str | None = None,
    webhook_policy: webhooks.UrlPolicy | None = None,
) -> PaymentNeeded | Bought:
    """``POST /api/buy``: see the module docstring."""
    quotes.validate_amount(credit_cents, rules=rules)
    if webhook_url is not None:
        if webhook_policy is None:
            raise InvalidInput("this shop does not take webhooks here", field="webhook_url")
        webhooks.check(webhook_url, webhook_policy)
    if header is None:
        return offer(
            db=db,
            rules=rules,
            x402=x402,
            credit_cents=credit_cents,
            key_models=key_models,
            client=client,
            url=url,
            now=clock(),
        )

    def again(code: str) -> PaymentNeeded:
        return offer(
            db=db,
            rules=rules,
            x402=x402,
            credit_cents=credit_cents,
            key_models=key_models,
            client=client,
            url=url,
            now=clock(),
            code=code,
        )

    read = read_payment(x402, header)
    if isinstance(read, str):
        return again(read)
    payload, wallet = read
    terms = x402.terms

    # 1. The quote it pays for (the one it names, or the price now).
    with db.begin() as session:
        quote, fresh = _quote_for(
            session,
            rules=rules,
            payload=payload,
            credit_cents=credit_cents,
            client=wallet.address.lower(),
            now=clock(),
        )
        requirement = requirements_for(x402, quote, key_models)
        quote_id = quote.id
    if not x402.matches(requirement, payload):
        code = "price_changed" if fresh else "payment_mismatch"
        return _refuse(code, requirement, x402, url, credit_cents)

    # 2. The order and the authorization, once.
    pid = payment_id(
        network=terms.network, asset=terms.asset, payer=wallet.address, nonce=wallet.nonce
    )
    auth = authorization_of(payload)
    try:
        with db.begin() as session:
            if not claim_payment(
                session,
                pid=pid,
                wallet=wallet,
                payload=payload,
                requirement=requirement,
                amount_cents=units_to_cents(int(requirement.amount)),
                valid_before=datetime.fromtimestamp(int(auth["validBefore"]), UTC),
                now=clock(),
            ):
                return _refuse("payment_replayed", requirement, x402, url, credit_cents)
            placed = transitions.place_order(
                session,
                rules=rules,
                token_key=token_key,
                provider=X402_PROVIDER,
                now=clock(),
                quote_id=quote_id,
                client=wallet.address.lower(),
                key_models=key_models,
            )
            order_id, token = placed.order.id, placed.token
            row = session.get(X402Payment, pid)
            assert row is not None
            row.order_id = order_id
            secret = (
                events.register(session, order_id=order_id, url=webhook_url, box=box, now=clock())
                if webhook_url is not None
                else None
            )
    except IntegrityError:  # the same authorization, at the same moment, in another request
        return _refuse("payment_replayed", requirement, x402, url, credit_cents)
    except QuoteExpired:  # another payment took this quote a moment ago
        return again("quote_used")

    # 3. Verify (changes nothing).
    refused = verify_payment(
        x402,
        payload,
        requirement,
        wallet,
        void=lambda why: _give_up(db, order_id=order_id, pid=pid, reason=why, now=clock()),
    )
    if refused is not None:
        return again(refused)

    # 4. Paid by authorization; this request holds the provisioning job.
    with db.begin() as session:
        order = session.get(Order, order_id, with_for_update=True)
        row = session.get(X402Payment, pid, with_for_update=True)
        assert order is not None and row is not None
        now = clock()
        transitions.payment_authorized(
            session, order=order, payer=wallet.address, payment_ref=f"x402:{pid}", now=now
        )
        row.status = "authorized"
        jobs.enqueue(session, kind=jobs.PROVISION, order_id=order_id, now=now)
        job = jobs.claim_for(
            session,
            kind=jobs.PROVISION,
            order_id=order_id,
            worker=worker,
            now=now,
            lease=rules.job_lease,
        )
        job_id = job.id if job is not None else None
    if job_id is not None:
        lease = jobs.Lease(job_id, worker)
        run_leased(
            db=db,
            clock=clock,
            lease=lease,
            seconds=sync_seconds,
            what=f"order {order_id}",
            step=lambda: keymaking.provision(
                db=db,
                gateways=gateways,
                box=box,
                rules=rules,
                clock=clock,
                order_id=order_id,
                lease=lease,
                capture=lambda oid: capture_payment(db=db, x402=x402, clock=clock, order_id=oid),
            ),
        )

    # 5. The outcome.
    with db.read() as session:
        order = session.get(Order, order_id)
        row = session.get(X402Payment, pid)
        assert order is not None and row is not None
        if order.status == st.CANCELLED:
            code = "not_settled" if row.reason is None else row.reason
            needed = again(code)
            return needed
        api_key = None
        if order.status == st.FULFILLED and order.key_secret is not None:
            api_key = box.open(order.key_secret, context=order.id)
        header_out = settlement_header(x402, row) if row.status == "settled" else None
        return Bought(order, token, api_key, header_out, webhook_secret=secret)


def settlement_header(x402: X402Gateway, row: X402Payment) -> str:
    return x402.response_header(
        transaction=row.transaction or "",
        network=x402.terms.network,
        payer=row.payer,
        amount_units=int(json.loads(row.requirements)["amount"]),
    )


def claim_payment(
    session: Session,
    *,
    pid: str,
    wallet: Wallet,
    payload: PaymentPayload,
    requirement: PaymentRequirements,
    amount_cents: int,
    valid_before: datetime,
    now: datetime,
    standing_id: str | None = None,
    topup_id: str | None = None,
) -> bool:
    """Record the authorization for a new order; False if it is already one order's (or a
    standing order's). An authorization the shop voided (never settled: its verify failed or
    its facilitator was down) may be offered again."""
    row = session.get(X402Payment, pid, with_for_update=True)
    fields: dict[str, Any] = {
        "payer": wallet.address,
        "nonce": wallet.nonce,
        "amount_cents": amount_cents,
        "valid_before": valid_before,
        "payload": payload.model_dump_json(by_alias=True, exclude_none=True),
        "requirements": requirement.model_dump_json(by_alias=True, exclude_none=True),
        "status": "verifying",
        "reason": None,
        "order_id": None,
        "standing_id": standing_id,
        "topup_id": topup_id,
        "settle_attempts": 0,
        "settle_unknown": False,
        "created_at": now,
    }
    if row is None:
        session.add(X402Payment(id=pid, **fields))
        session.flush()
        return True
    if row.status != "void" or row.settle_attempts:
        return False
    for name, value in fields.items():
        setattr(row, name, value)
    return True


def _give_up(db: Database, *, order_id: str, pid: str, reason: str, now: datetime) -> None:
    """The payment was not verified: the order is cancelled, the authorization never used."""
    with db.begin() as session:
        order = session.get(Order, order_id, with_for_update=True)
        row = session.get(X402Payment, pid, with_for_update=True)
        if row is not None and row.status == "verifying":
            row.status, row.reason = "void", reason
        if order is not None:
            transitions.cancel(session, order=order, now=now, reason=f"payment refused: {reason}")


def _stored(row: X402Payment) -> tuple[PaymentPayload, PaymentRequirements]:
    return (
        PaymentPayload.model_validate_json(row.payload),
        PaymentRequirements.model_validate_json(row.requirements),
    )


def capture_payment(*, db: Database, x402: X402Gateway, clock: Clock, order_id: str) -> Captured:
    """Settle the authorized payment of the order (or top-up: ``order_id`` is then a top-up
    id) (idempotent: the authorization can move the money once; a settled or voided one is
    not sent again).

    A settle call whose answer was lost leaves the outcome unknown: the next call sends the
    same authorization again. If the token contract then says its nonce is used, the first
    call moved the money — the authorization pays only the operator's address (its signer
    could also have cancelled it on chain in between; docs/payments.md, "x402")."""
    with db.begin() as session:
        column = X402Payment.topup_id if is_topup_id(order_id) else X402Payment.order_id
        row = session.scalars(
            select(X402Payment).where(column == order_id).with_for_update()
        ).first()
        if row is None or row.status == "void":
            return Captured.REFUSED
        if row.status == "settled":
            _settled(session, row=row, now=clock())
            return Captured.SETTLED
        row.settle_attempts += 1
        tried_before = row.settle_unknown or row.settle_attempts > 1
        pid = row.id
        payload, requirement = _stored(row)
    try:
        result = x402.settle(payload, requirement)
    except SettlementUnknown:
        with db.begin() as session:
            row = session.get(X402Payment, pid, with_for_update=True)
            if row is not None:
                row.settle_unknown = True
        return Captured.UNKNOWN
    except PaymentProviderUnavailable:
        return Captured.UNKNOWN  # never reached the facilitator: nothing moved; try later
    with db.begin() as session:
        row = session.get(X402Payment, pid, with_for_update=True)
        assert row is not None
        if result.success or (result.reason == ERR_NONCE_ALREADY_USED and tried_before):
            row.transaction = row.transaction or result.transaction
            _settled(session, row=row, now=clock())
            return Captured.SETTLED
        if result.reason == "settlement_pending":
            row.settle_unknown = True
            return Captured.UNKNOWN
        if row.status == "settled":  # another attempt recorded it meanwhile
            return Captured.SETTLED
        row.status, row.reason = "void", result.reason or "not_settled"
        return Captured.REFUSED


def _settled(session: Session, *, row: X402Payment, now: datetime) -> None:
    row.status = "settled"
    row.settled_at = row.settled_at or now
    if row.topup_id is not None:
        topup = session.get(Topup, row.topup_id, with_for_update=True)
        if topup is not None:
            topups.payment_settled(
                session,
                topup=topup,
                amount_cents=row.amount_cents,
                transaction=row.transaction,
                now=now,
            )
        return
    if row.order_id is None:
        return
    order = session.get(Order, row.order_id, with_for_update=True)
    if order is not None:
        transitions.payment_settled(
            session,
            order=order,
            amount_cents=row.amount_cents,
            transaction=row.transaction,
            now=now,
        )
