"""The wallet as the buyer's identity (x402 purchases): a wallet that signed in with x402's
sign-in-with-x lists what it bought, sees a key it has not confirmed yet, and reissues a lost
key. The proof is checked in :mod:`cheaptokens.payments.siwx`; here each sign-in's nonce is
spent once and the wallet reaches only the orders it paid for."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from cheaptokens.db import Database
from cheaptokens.errors import NotFound, ShopError
from cheaptokens.models import Order, SiwxNonce
from cheaptokens.orders import flows
from cheaptokens.orders.rules import X402_PROVIDER


class SignInReplayed(ShopError):
    status = 401
    code = "invalid_siwx_replayed"


def spend_nonce(
    db: Database, *, nonce: str, address: str, expires_at: datetime, now: datetime
) -> None:
    """Record a sign-in's nonce; a second use (a replay, or two at once) is refused."""
    try:
        with db.begin() as session:
            session.execute(delete(SiwxNonce).where(SiwxNonce.expires_at < now - timedelta(days=1)))
            session.add(SiwxNonce(nonce=nonce, address=address, used_at=now, expires_at=expires_at))
    except IntegrityError:
        raise SignInReplayed("this sign-in was already used: sign a new challenge") from None


def purchases(db: Database, *, wallet: str, limit: int = 200) -> list[Order]:
    """The wallet's x402 orders, newest first."""
    with db.read() as session:
        return list(
            session.scalars(
                select(Order)
                .where(Order.client == wallet.lower(), Order.payment_provider == X402_PROVIDER)
                .order_by(Order.created_at.desc())
                .limit(limit)
            ).all()
        )


def order_of(db: Database, *, wallet: str, order_id: str) -> Order:
    """One of the wallet's orders; NotFound for any other (no hint whose it is)."""
    with db.read() as session:
        order = session.get(Order, order_id)
    if order is None or order.client != wallet.lower() or order.payment_provider != X402_PROVIDER:
        raise NotFound("this wallet has no order with that id")
    return order


def reissue(db: Database, *, wallet: str, order_id: str, now: datetime) -> Order:
    """The wallet lost the key: the same reissue as the order token's holder gets
    (the old key deleted first, a new one with the unspent credit)."""
    order_of(db, wallet=wallet, order_id=order_id)
    with db.begin() as session:
        order = session.get(Order, order_id, with_for_update=True)
        assert order is not None
        flows.begin_reissue(session, order=order, now=now)
        return order
