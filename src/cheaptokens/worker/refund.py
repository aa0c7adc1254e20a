"""Refund a paid order: first make sure no key of it stays alive, then refund the payment.

The steps between the calls are :mod:`cheaptokens.orders.refunds`'s; each is safe to repeat
(the provider's refund is idempotent by key ``refund-<order id>``). A payment made with x402
(``x402:<payment id>``) goes back as USDC from the refund wallet to the wallet that paid
(:class:`~cheaptokens.payments.x402_refunds.X402Refunder`, idempotent by the payment it
returns); without a refund wallet it is the operator's to pay by hand (``refund_failed``).
"""

from __future__ import annotations

from collections.abc import Mapping

from cheaptokens import failpoints
from cheaptokens.alerts import raise_alert
from cheaptokens.db import Database
from cheaptokens.jobs import Retry
from cheaptokens.money import format_usd
from cheaptokens.orders import refunds
from cheaptokens.orders.rules import order_key_description
from cheaptokens.payments import PaymentProvider
from cheaptokens.payments.errors import PaymentProviderUnavailable, RefundFailed
from cheaptokens.payments.x402_refunds import RefundWalletUnderfunded, X402Refunder
from cheaptokens.times import Clock
from cheaptokens.venice import errors as venice_errors
from cheaptokens.venice.keys import delete_described, ensure_deleted
from cheaptokens.venice.types import VeniceGateway


def pay_back(
    *,
    db: Database,
    payments: PaymentProvider,
    x402_refunds: X402Refunder | None,
    clock: Clock,
    order_id: str,
    payment_ref: str,
    payer: str | None,
    amount_cents: int,
    idempotency_key: str,
) -> str | None:
    """Refund ``amount_cents`` of the payment ``payment_ref``; its reference. Raises
    :class:`Retry` (try later; an underfunded x402 refund wallet raises an alert first) or
    :class:`RefundFailed` (the operator must pay it back)."""
    try:
        if not payment_ref.startswith(refunds.X402_REF):
            return payments.refund(
                payment_ref=payment_ref, amount_cents=amount_cents, idempotency_key=idempotency_key
            ).reference
        if x402_refunds is None or payer is None:
            raise RefundFailed(
                f"x402 refund of {format_usd(amount_cents)} USDC to wallet {payer} must be paid "
                "by hand: no refund wallet is configured (CHEAPTOKENS_X402_REFUND_KEY)"
            )
        paid = x402_refunds.refund(
            to=payer, amount_cents=amount_cents, refund_id=f"{idempotency_key}|{payment_ref}"
        )
        return paid.reference
    except RefundWalletUnderfunded as exc:
        with db.begin() as session:
            refunds.refund_waits(session, order_id=order_id, message=str(exc), now=clock())
        raise Retry("the x402 refund wallet is underfunded", 30.0) from exc
    except PaymentProviderUnavailable as exc:
        raise Retry("payment provider unavailable", 10.0) from exc


def refund(
    *,
    db: Database,
    gateways: Mapping[str, VeniceGateway],
    payments: PaymentProvider,
    clock: Clock,
    order_id: str,
    x402_refunds: X402Refunder | None = None,
) -> None:
    now = clock()
    with db.read() as session:
        plan = refunds.refund_plan(session, order_id=order_id)
    if plan is None:
        return
    gateway = gateways.get(plan.account)
    if plan.delete_keys_first and gateway is None:
        # Refunds delete the key first: with its account gone from the configuration the key
        # may still work, so nothing is paid back until an operator restores the account.
        with db.begin() as session:
            raise_alert(
                session,
                kind="account_missing",
                order_id=order_id,
                account=plan.account,
                message=f"refund of {order_id} waits: its key is on account {plan.account}, "
                "which is not configured, so it cannot be deleted first",
                now=now,
            )
        raise Retry("account not configured: the key cannot be deleted first", 60)
    if plan.delete_keys_first and gateway is not None:
        try:
            if plan.key_id is not None:
                ensure_deleted(gateway, plan.key_id)
            delete_described(gateway, order_key_description(order_id))
            failpoints.hit("refund.after_key_delete")
        except venice_errors.VeniceError as exc:
            raise Retry(f"could not delete the key first ({type(exc).__name__})", 5.0) from exc
        with db.begin() as session:
            refunds.keys_deleted(session, order_id=order_id, now=now)

    def pay(payment_ref: str, payer: str | None, cents: int, key: str) -> str | None:
        return pay_back(
            db=db,
            payments=payments,
            x402_refunds=x402_refunds,
            clock=clock,
            order_id=order_id,
            payment_ref=payment_ref,
            payer=payer,
            amount_cents=cents,
            idempotency_key=key,
        )

    refund_ref: str | None = None
    try:
        if plan.amount_cents > 0 and plan.payment_ref:
            refund_ref = pay(plan.payment_ref, plan.payer, plan.amount_cents, f"refund-{order_id}")
            failpoints.hit("refund.after_refund_call")
        for part in plan.topup_parts:  # before the order is marked: a retry still sees them
            ref = None
            if part.amount_cents > 0 and part.payment_ref:
                ref = pay(
                    part.payment_ref, part.payer, part.amount_cents, f"refund-{part.topup_id}"
                )
            with db.begin() as session:
                refunds.topup_part_refunded(session, part=part, refund_ref=ref, now=now)
    except RefundFailed as exc:
        with db.begin() as session:
            refunds.refund_refused(session, order_id=order_id, reason=str(exc), now=now)
        return
    with db.begin() as session:
        refunds.refund_done(session, order_id=order_id, refund_ref=refund_ref, now=now)
        failpoints.hit("refund.before_commit")


def refund_stray(*, db: Database, payments: PaymentProvider, clock: Clock, order_id: str) -> None:
    """Refund every extra payment recorded for ``order_id`` (idempotent per payment)."""
    now = clock()
    with db.read() as session:
        pending = refunds.pending_strays(session, order_id=order_id)
    for stray in pending:
        try:
            result = payments.refund(
                payment_ref=stray.payment_ref,
                amount_cents=stray.amount_cents,
                idempotency_key=f"stray-{stray.payment_ref}",
            )
        except PaymentProviderUnavailable as exc:
            raise Retry("payment provider unavailable", 10.0) from exc
        except RefundFailed as exc:
            with db.begin() as session:
                refunds.stray_refund_refused(session, order_id=order_id, reason=str(exc), now=now)
            continue
        with db.begin() as session:
            refunds.stray_refunded(
                session, order_id=order_id, stray=stray, refund_ref=result.reference, now=now
            )
