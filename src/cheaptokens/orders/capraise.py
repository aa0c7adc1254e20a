"""Raise a key's cap for a paid top-up (Venice ``PATCH /api_keys``) — exactly once in effect,
whatever races it.

The worker runs these steps as its ``apply_topup`` job (:mod:`cheaptokens.worker.topup`); an
x402 top-up (``POST /api/orders/{id}/topups`` with ``PAYMENT-SIGNATURE``) runs them inside
the request, holding the same job's lease, so the two never both apply it. The decisions are
:mod:`cheaptokens.orders.topups`'s:

1. Claim the top-up's credit on the order's cap in the database (once).
2. Set Venice's cap to whatever the database holds, reading it again after each call: two
   top-ups racing each other, or a retry after a lost answer, end with Venice holding the
   latest cap.
3. An x402 top-up's payment is an authorization until it settles: settle it now
   (``capture``), after the cap was raised and before the top-up counts as applied. If it does
   not settle, the claim is given back and Venice's cap set back down (the refund job does it
   again if this call fails), and nothing was charged; if its outcome is unknown, try later.
4. Mark the top-up applied.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from cheaptokens.db import Database
from cheaptokens.jobs import Retry
from cheaptokens.orders import topups
from cheaptokens.orders.keymaking import Capture, Captured, key_limit
from cheaptokens.orders.rules import ShopRules
from cheaptokens.times import Clock
from cheaptokens.venice import errors as venice_errors
from cheaptokens.venice.types import VeniceGateway

#: PATCH, read the database, PATCH again if another top-up moved the cap meanwhile.
ROUNDS = 5


def apply_topup(
    *,
    db: Database,
    gateways: Mapping[str, VeniceGateway],
    rules: ShopRules,
    clock: Clock,
    topup_id: str,
    capture: Capture | None = None,
) -> None:
    """Run one attempt; raises :class:`Retry` to be called again later. ``capture`` settles
    an x402 top-up's authorized payment (without it such a top-up waits)."""
    with db.begin() as session:
        plan = topups.begin_apply(session, topup_id=topup_id, rules=rules, now=clock())
    if plan is None:
        return
    gateway = gateways.get(plan.account)
    if gateway is None:
        raise Retry(f"account {plan.account} is not configured", 60)
    sent = sync_cap(db, gateway, key_id=plan.key_id, order_id=plan.order_id)
    if sent is None:
        return  # the key went away meanwhile: the next attempt refunds the top-up
    if plan.unsettled:
        outcome = capture(topup_id) if capture is not None else Captured.UNKNOWN
        if outcome is Captured.UNKNOWN:
            raise Retry("the x402 settlement's outcome is not known yet", 2.0)
        if outcome is Captured.REFUSED:
            with db.begin() as session:
                topups.not_settled(session, topup_id=topup_id, now=clock())
            # Put Venice's cap back down now; the refund job does it again if this fails.
            with contextlib.suppress(Retry):
                sync_cap(db, gateway, key_id=plan.key_id, order_id=plan.order_id)
            return
    with db.begin() as session:
        topups.applied(session, topup_id=topup_id, cap_cents=sent, now=clock())


def sync_cap(db: Database, gateway: VeniceGateway, *, key_id: str, order_id: str) -> int | None:
    """Set Venice's cap of the key to the one the database holds until they agree; the cap
    set, or None if the key is no longer live."""
    sent = None
    for _ in range(ROUNDS):
        with db.read() as session:
            cap = topups.cap_of(session, order_id=order_id)
        if cap is None:
            return None
        if cap == sent:
            return sent
        set_cap(gateway, key_id, cap)
        sent = cap
    raise Retry("the key's cap kept moving", 1.0)


def set_cap(gateway: VeniceGateway, key_id: str, cap_cents: int) -> None:
    """Set the key's DIEM cap (USD stays at 0); Venice errors become retries."""
    try:
        gateway.update_key(key_id, consumption_limit=key_limit(cap_cents))
    except venice_errors.NotFound:
        raise Retry("the key is gone in Venice; the watch will replace it", 10.0) from None
    except venice_errors.RateLimited as exc:
        raise Retry("venice rate limited", max(exc.retry_after or 0, 1.0)) from exc
    except venice_errors.VeniceError as exc:
        raise Retry(f"venice error on PATCH ({type(exc).__name__})", 2.0) from exc
