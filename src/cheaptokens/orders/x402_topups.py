"""x402 top-ups: more credit on the same key, paid with a signed USDC authorization.

``POST /api/orders/{id}/topups`` (order token as Bearer) takes the x402 way when the request
carries ``PAYMENT-SIGNATURE``, when it asks for it (``"payment": "x402"``), or — unless it asks
for a checkout — when the order itself was bought with x402. Without a payment the answer is
402 with the requirements of a fresh top-up: the credit reserved on the key's own account at
the current price, held for a quote's time (the same reservation and price lock as a card
top-up; the requirement names it in ``extra.topup_id`` and ``extra.order_id``, so a payment
signed for one order's top-up does not match another's). Where the key's account has no room
the answer is ``409 no_room_on_key_account``, offering a new key, as for card top-ups.

Sent again with the signed payment:

1. the top-up the payment names is used if it is this order's, still open, for this amount;
   if it lapsed, the credit is priced again now, and a payment signed for another price is
   refused (402 ``price_changed``, with the new requirements);
2. one transaction records the authorization by its (network, asset, payer, nonce): the
   same authorization a second time — for this top-up, another order's or a purchase — is
   refused (``payment_replayed``): it pays for one thing only;
3. the facilitator verifies it (nothing moves); a refusal gives the reservation back (402);
4. the top-up is paid by authorization (credit sold) and its ``apply_topup`` job is queued
   *and leased to this request*, which runs the worker's own steps
   (:mod:`cheaptokens.orders.capraise`): raise the key's cap, **settle**, mark it applied. If
   settlement fails the cap is set back down and the top-up cancelled (402); if the request
   dies, the lease lapses and the worker finishes the same job;
5. the answer is 200 with the top-up and the settlement in ``PAYMENT-RESPONSE``, or 202
   (poll ``GET /api/orders/{id}``) if the cap could not be raised within
   ``x402_sync_seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from x402.schemas import PaymentPayload, PaymentRequirements

from cheaptokens import jobs
from cheaptokens.db import Database
from cheaptokens.models import Order, Topup, X402Payment
from cheaptokens.money import format_usd
from cheaptokens.orders import capraise, topups
from cheaptokens.orders.ids import authorize
from cheaptokens.orders.rules import X402_PROVIDER, ShopRules
from cheaptokens.orders.x402 import (
    NOT_APPLIED,
    PaymentNeeded,
    capture_payment,
    claim_payment,
    payment_id,
    read_payment,
    reason_text,
    run_leased,
    settlement_header,
    verify_payment,
)
from cheaptokens.payments.x402 import (
    X402Gateway,
    authorization_of,
    units_to_cents,
)
from cheaptokens.times import Clock
from cheaptokens.venice.types import VeniceGateway


@dataclass(frozen=True, slots=True)
class ToppedUp:
    """The top-up the payment bought: applied (200), or still being applied (202: poll)."""

    topup: Topup
    order: Order
    payment_header: str | None


def wants_x402(order: Order, *, header: str | None, payment: str | None) -> bool:
    """Does this top-up request take the x402 way? (See the module docstring.)"""
    if header is not None or payment == "x402":
        return True
    return payment is None and order.payment_provider == X402_PROVIDER


def requirements_for(x402: X402Gateway, topup: Topup) -> PaymentRequirements:
    """What paying for ``topup`` means: exactly its price, naming the top-up and its order."""
    return x402.requirements(
        amount_cents=topup.price_cents,
        extra={
            "topup_id": topup.id,
            "order_id": topup.order_id,
            "credit_cents": topup.credit_cents,
        },
    )


def _description(credit_cents: int) -> str:
    return f"{format_usd(credit_cents)} more Venice.ai credit on your key, valid until 00:00 UTC"


def _place(
    session: Session,
    *,
    order: Order,
    rules: ShopRules,
    credit_cents: int,
    client: str | None,
    now: datetime,
) -> Topup:
    placed = topups.place_topup(
        session,
        order=order,
        rules=rules,
        credit_cents=credit_cents,
        provider=X402_PROVIDER,
        now=now,
        client=client,
        hold_until=now + rules.quote_ttl,
    )
    return placed.topup


def _required(
    x402: X402Gateway, requirement: PaymentRequirements, url: str, credit: int, code: str | None
) -> PaymentNeeded:
    return PaymentNeeded(
        x402.payment_required(
            accepts=[requirement],
            url=url,
            description=_description(credit),
            error=f"{code}: {reason_text(code)}" if code else None,
        ),
        code,
    )


def offer(
    *,
    db: Database,
    rules: ShopRules,
    x402: X402Gateway,
    order_id: str,
    token: str,
    credit_cents: int,
    client: str | None,
    url: str,
    now: datetime,
    code: str | None = None,
) -> PaymentNeeded:
    """A fresh top-up for ``credit_cents`` (reserved on the key's account, price locked) as
    x402 requirements."""
    with db.begin() as session:
        order = authorize(session, order_id=order_id, token=token)
        session.refresh(order, with_for_update=True)
        topup = _place(
            session, order=order, rules=rules, credit_cents=credit_cents, client=client, now=now
        )
        requirement = requirements_for(x402, topup)
    return _required(x402, requirement, url, credit_cents, code)


def _topup_for(
    session: Session,
    *,
    order: Order,
    rules: ShopRules,
    payload: PaymentPayload,
    credit_cents: int,
    client: str,
    now: datetime,
) -> tuple[Topup, str | None]:
    """The open top-up of this order the payment names, or a fresh one, with the code to
    refuse the payment with if it does not match the fresh one's terms."""
    named = (payload.accepted.extra or {}).get("topup_id")
    topup = session.get(Topup, named, with_for_update=True) if isinstance(named, str) else None
    if topup is not None and topup.order_id == order.id:
        if (
            topup.status == topups.AWAITING_PAYMENT
            and topup.payment_provider == X402_PROVIDER
            and topup.checkout_expires_at > now
            and topup.credit_cents == credit_cents
        ):
            return topup, None
        fresh = _place(
            session, order=order, rules=rules, credit_cents=credit_cents, client=client, now=now
        )
        return fresh, "price_changed"
    fresh = _place(
        session, order=order, rules=rules, credit_cents=credit_cents, client=client, now=now
    )
    return fresh, "payment_mismatch"  # another order's top-up, or none of ours


def topup(
    *,
    db: Database,
    rules: ShopRules,
    gateways: dict[str, VeniceGateway],
    x402: X402Gateway,
    clock: Clock,
    order_id: str,
    token: str,
    credit_cents: int,
    header: str | None,
    client: str | None,
    url: str,
    worker: str,
    sync_seconds: float,
) -> PaymentNeeded | ToppedUp:
    """``POST /api/orders/{id}/topups`` the x402 way: see the module docstring."""

    def again(code: str | None = None) -> PaymentNeeded:
        return offer(
            db=db,
            rules=rules,
            x402=x402,
            order_id=order_id,
            token=token,
            credit_cents=credit_cents,
            client=client,
            url=url,
            now=clock(),
            code=code,
        )

    if header is None:
        return again()
    read = read_payment(x402, header)
    if isinstance(read, str):
        return again(read)
    payload, wallet = read
    terms = x402.terms

    # 1. The top-up it pays for (the one it names, or the price now).
    with db.begin() as session:
        order = authorize(session, order_id=order_id, token=token)
        session.refresh(order, with_for_update=True)
        chosen, code = _topup_for(
            session,
            order=order,
            rules=rules,
            payload=payload,
            credit_cents=credit_cents,
            client=client or wallet.address.lower(),
            now=clock(),
        )
        requirement = requirements_for(x402, chosen)
        topup_id = chosen.id
    if not x402.matches(requirement, payload):
        return _required(x402, requirement, url, credit_cents, code or "payment_mismatch")

    # 2. The authorization, once.
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
                topup_id=topup_id,
            ):
                return _required(x402, requirement, url, credit_cents, "payment_replayed")
    except IntegrityError:  # the same authorization, at the same moment, in another request
        return _required(x402, requirement, url, credit_cents, "payment_replayed")

    # 3. Verify (changes nothing).
    refused = verify_payment(
        x402,
        payload,
        requirement,
        wallet,
        void=lambda why: _give_up(db, topup_id=topup_id, pid=pid, reason=why, now=clock()),
    )
    if refused is not None:
        return again(refused)

    # 4. Paid by authorization; this request holds the apply_topup job.
    with db.begin() as session:
        t = session.get(Topup, topup_id, with_for_update=True)
        row = session.get(X402Payment, pid, with_for_update=True)
        assert t is not None and row is not None
        now = clock()
        lapsed = t.status != topups.AWAITING_PAYMENT  # the hold lapsed a moment ago
        if lapsed:
            row.status, row.reason = "void", "quote_used"
    if lapsed:
        return again("quote_used")
    with db.begin() as session:
        t = session.get(Topup, topup_id, with_for_update=True)
        row = session.get(X402Payment, pid, with_for_update=True)
        assert t is not None and row is not None
        topups.payment_authorized(
            session, topup=t, payer=wallet.address, payment_ref=f"x402:{pid}", now=now
        )
        row.status = "authorized"
        jobs.enqueue(session, kind=jobs.APPLY_TOPUP, order_id=topup_id, now=now)
        job = jobs.claim_for(
            session,
            kind=jobs.APPLY_TOPUP,
            order_id=topup_id,
            worker=worker,
            now=now,
            lease=rules.job_lease,
        )
        job_id = job.id if job is not None else None
    if job_id is not None:
        run_leased(
            db=db,
            clock=clock,
            lease=jobs.Lease(job_id, worker),
            seconds=sync_seconds,
            what=f"top-up {topup_id}",
            step=lambda: capraise.apply_topup(
                db=db,
                gateways=gateways,
                rules=rules,
                clock=clock,
                topup_id=topup_id,
                capture=lambda tid: capture_payment(db=db, x402=x402, clock=clock, order_id=tid),
            ),
        )

    # 5. The outcome.
    with db.begin() as session:
        t = session.get(Topup, topup_id)
        row = session.get(X402Payment, pid, with_for_update=True)
        o = session.get(Order, order_id)
        assert t is not None and row is not None and o is not None
        if t.failure_reason is None:
            header_out = settlement_header(x402, row) if row.status == "settled" else None
            return ToppedUp(t, o, header_out)
        # Not applied (no room any more, the key went away, or the payment did not settle).
        if row.status in ("verifying", "authorized"):
            row.status, row.reason = "void", NOT_APPLIED  # never to be settled
        code = row.reason or "not_settled"
    return again(code)


def _give_up(db: Database, *, topup_id: str, pid: str, reason: str, now: datetime) -> None:
    """The payment was not verified: the top-up is cancelled, the authorization never used."""
    with db.begin() as session:
        t = session.get(Topup, topup_id, with_for_update=True)
        row = session.get(X402Payment, pid, with_for_update=True)
        if row is not None and row.status == "verifying":
            row.status, row.reason = "void", reason
        if t is not None:
            topups.cancel(session, topup=t, now=now, reason=f"payment refused: {reason}")
