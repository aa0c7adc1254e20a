"""Make the Venice key for a paid order — exactly once, whatever crashes in between.

The worker runs these steps as its ``provision`` job (:mod:`cheaptokens.worker.provision`);
an x402 purchase runs them inside the request, holding the same job's lease, so the two never
both make a key (docs/architecture.md). The steps, each safe to repeat (the decisions are
:mod:`cheaptokens.orders.fulfilment`'s):

1. Plan the attempt and mark it (committed) before the first create; the sale may move to
   another account, or take a warm pool key.
2. If an attempt was already marked, it may have created a key whose secret never reached
   the database: list the account's keys and delete every one whose description names this
   order (the secret exists only in Venice's create response, so such a key is useless and
   must not stay alive).
3. Create the key: ``consumptionLimit {"diem": credit, "usd": 0}`` (a resold key can never
   spend the operator's USD), ``limitPeriod: EPOCH``, ``expiresAt`` the next 00:00 UTC,
   description ``cheaptokens:<order id>`` — or raise a pool key's cap with ``PATCH``.
4. An x402 order's payment is an authorization until it settles: settle it now (``capture``),
   after the key exists and before it is recorded. If it does not settle, delete the key and
   cancel the order (nothing was charged); if its outcome is unknown, try again later.
5. In one transaction, and only while this worker still holds the job's lease (a fencing
   check), store the key sealed and mark the order fulfilled; otherwise delete the key.

Venice 429/5xx are retried by the client and then by rescheduling the job; past the
deadline (or the end of the key's day) the order is refunded instead.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal

from cheaptokens import failpoints
from cheaptokens.alerts import raise_alert
from cheaptokens.db import Database
from cheaptokens.jobs import Lease, Retry
from cheaptokens.money import cents_to_dollars
from cheaptokens.orders import fulfilment
from cheaptokens.orders.rules import KEY_MODELS, ShopRules, order_key_description
from cheaptokens.secretbox import SecretBox
from cheaptokens.times import Clock
from cheaptokens.venice import errors as venice_errors
from cheaptokens.venice.keys import delete_described, ensure_deleted
from cheaptokens.venice.types import ConsumptionLimit, ModelPrivacy, VeniceGateway


class Captured(enum.Enum):
    """What settling an order's authorized payment did."""

    SETTLED = "settled"  # the money moved (now or earlier)
    REFUSED = "refused"  # it will not move: the order gets no key
    UNKNOWN = "unknown"  # the answer was lost: ask again later


#: Settles the payment of the order with this id (its own transactions and calls).
Capture = Callable[[str], Captured]


def key_limit(credit_cents: int) -> ConsumptionLimit:
    """A sold key's caps: its credit in DIEM, and no USD at all."""
    return ConsumptionLimit(diem=cents_to_dollars(credit_cents), usd=Decimal("0.00"))


def provision(
    *,
    db: Database,
    gateways: Mapping[str, VeniceGateway],
    box: SecretBox,
    rules: ShopRules,
    clock: Clock,
    order_id: str,
    lease: Lease,
    capture: Capture | None = None,
) -> None:
    """Run one attempt; raises :class:`Retry` to be called again later. ``capture`` settles
    an x402 order's authorized payment (without it such an order waits)."""
    now = clock()
    with db.begin() as session:
        plan = fulfilment.plan_key(
            session, order_id=order_id, rules=rules, accounts=list(gateways), now=now
        )
        if plan is None:
            return  # done already, refunded, never paid, or given up just now
        failpoints.hit("provision.before_mark_commit")
    failpoints.hit("provision.after_mark_commit")
    gateway = gateways.get(plan.account)
    if gateway is None:
        with db.begin() as session:
            raise_alert(
                session,
                kind="account_missing",
                order_id=order_id,
                account=plan.account,
                message=f"order {order_id} is on account {plan.account}, which is not configured",
                now=now,
            )
        raise Retry("account not configured", 60)
    limit = key_limit(plan.credit_cents)
    privacy = KEY_MODELS[plan.key_models]
    description = order_key_description(order_id)
    if plan.pooled is not None:
        key_id = plan.pooled.key_id
        expires_at: datetime | None = plan.pooled.expires_at
        _raise_pool_cap(
            db, gateway, key_id=key_id, description=description, limit=limit, privacy=privacy
        )
        api_key = box.open(plan.pooled.sealed_secret, context=key_id)
    else:
        try:
            if plan.recovering:
                delete_described(gateway, description)
            created = gateway.create_key(
                description=description,
                consumption_limit=limit,
                limit_period="EPOCH",
                expires_at=plan.expires_at,
                model_privacy=privacy,
            )
        except venice_errors.RateLimited as exc:
            raise Retry("venice rate limited", max(exc.retry_after or 0, 3.0)) from exc
        except venice_errors.Unavailable as exc:  # includes OutcomeUnknown: step 2 cleans up
            with db.begin() as session:
                fulfilment.mark_attempt_started(session, order_id=order_id, now=now)
            raise Retry(f"venice unavailable ({type(exc).__name__})", 2.0) from exc
        except venice_errors.VeniceError as exc:
            with db.begin() as session:
                raise_alert(
                    session,
                    kind="provision_failed",
                    order_id=order_id,
                    account=plan.account,
                    message=f"Venice refused to create the key: {exc}",
                    now=now,
                )
            raise Retry(f"venice error ({type(exc).__name__})", 30.0) from exc
        failpoints.hit("provision.after_create")
        key_id, api_key, expires_at = created.id, created.api_key, created.expires_at
    if plan.capture:
        captured = capture(order_id) if capture is not None else Captured.UNKNOWN
        failpoints.hit("provision.after_capture")
        if captured is Captured.UNKNOWN:
            raise Retry("the payment has not settled yet", 2.0)
        if captured is Captured.REFUSED:
            try:
                ensure_deleted(gateway, key_id)
            except venice_errors.VeniceError as exc:
                raise Retry(f"could not delete the unpaid key ({type(exc).__name__})", 2.0) from exc
            with db.begin() as session:
                fulfilment.payment_refused(session, order_id=order_id, key_id=key_id, now=clock())
            return
    with db.begin() as session:
        outcome = fulfilment.record_key(
            session,
            order_id=order_id,
            key_id=key_id,
            api_key=api_key,
            expires_at=expires_at,
            box=box,
            lease=lease,
            now=clock(),
        )
        if outcome is fulfilment.Recorded.KEPT:
            failpoints.hit("provision.before_record_commit")
    if outcome is fulfilment.Recorded.KEPT:
        failpoints.hit("provision.after_record_commit")
    elif outcome is fulfilment.Recorded.LOST:
        # Someone else finished (or refunded) the order, or our lease lapsed: undo our key.
        ensure_deleted(gateway, key_id)
        raise Retry("lost the lease while creating the key", 0.5)


def _raise_pool_cap(
    db: Database,
    gateway: VeniceGateway,
    *,
    key_id: str,
    description: str,
    limit: ConsumptionLimit,
    privacy: ModelPrivacy,
) -> None:
    """Raise a claimed pool key's cap to the order's credit, rename it and set the models it
    may call (idempotent)."""
    try:
        gateway.update_key(
            key_id, description=description, consumption_limit=limit, model_privacy=privacy
        )
    except venice_errors.NotFound:
        # The pool key is gone (deleted or expired): fall back to creating one.
        with db.begin() as session:
            fulfilment.pool_key_vanished(session, key_id=key_id)
        raise Retry("pool key vanished; creating a key instead", 0.1) from None
    except venice_errors.RateLimited as exc:
        raise Retry("venice rate limited", max(exc.retry_after or 0, 1.0)) from exc
    except venice_errors.VeniceError as exc:
        raise Retry(f"venice error on PATCH ({type(exc).__name__})", 1.0) from exc
    failpoints.hit("provision.after_pool_patch")
