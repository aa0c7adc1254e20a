"""Replace a key that cannot spend what it holds: delete it first, then make a new key with
the unspent credit (decisions in :mod:`cheaptokens.orders.replacement`). Each step is safe to
repeat, so a crash anywhere ends with exactly one live key of the order, or a refund."""

from __future__ import annotations

from collections.abc import Mapping

from cheaptokens import failpoints
from cheaptokens.db import Database
from cheaptokens.jobs import Lease, Retry
from cheaptokens.money import dollars_to_cents_up
from cheaptokens.orders import replacement
from cheaptokens.orders.fulfilment import Recorded
from cheaptokens.orders.rules import KEY_MODELS, ShopRules, order_key_description
from cheaptokens.secretbox import SecretBox
from cheaptokens.times import Clock
from cheaptokens.venice import errors as venice_errors
from cheaptokens.venice.keys import delete_described, ensure_deleted
from cheaptokens.venice.types import VeniceGateway
from cheaptokens.worker.provision import key_limit


def replace_key(
    *,
    db: Database,
    gateways: Mapping[str, VeniceGateway],
    box: SecretBox,
    rules: ShopRules,
    clock: Clock,
    order_id: str,
    lease: Lease,
) -> None:
    for _ in range(3):  # delete the old key, then make the new one
        with db.begin() as session:
            step = replacement.next_step(
                session, order_id=order_id, rules=rules, accounts=list(gateways), now=clock()
            )
        if step is None:
            return
        gateway = gateways.get(step.account)
        if gateway is None:
            raise Retry(f"account {step.account} is not configured", 60)
        if isinstance(step, replacement.DeleteOld):
            used = _delete_old(gateway, step.key_id)
            failpoints.hit("replace.after_old_delete")
            with db.begin() as session:
                replacement.old_key_gone(session, order_id=order_id, used_cents=used, now=clock())
            continue
        _create_new(db, gateway, box, step, lease, clock)
        return


def _delete_old(gateway: VeniceGateway, key_id: str | None) -> int | None:
    """Delete the old key; its usage at that moment (None if Venice no longer knows it)."""
    if key_id is None:
        return None
    try:
        try:
            used: int | None = dollars_to_cents_up(gateway.get_key(key_id).period_usage)
        except venice_errors.NotFound:
            used = None
        ensure_deleted(gateway, key_id)
    except venice_errors.VeniceError as exc:
        raise Retry(f"could not delete the old key ({type(exc).__name__})", 2.0) from exc
    return used


def _create_new(
    db: Database,
    gateway: VeniceGateway,
    box: SecretBox,
    step: replacement.CreateNew,
    lease: Lease,
    clock: Clock,
) -> None:
    description = order_key_description(step.order_id)
    try:
        # The old key is gone: any key still named for this order is an earlier attempt's.
        delete_described(gateway, description)
        created = gateway.create_key(
            description=description,
            consumption_limit=key_limit(step.credit_cents),
            limit_period="EPOCH",
            expires_at=step.expires_at,
            model_privacy=KEY_MODELS[step.key_models],
        )
    except venice_errors.RateLimited as exc:
        raise Retry("venice rate limited", max(exc.retry_after or 0, 3.0)) from exc
    except venice_errors.VeniceError as exc:
        raise Retry(f"venice error ({type(exc).__name__})", 2.0) from exc
    failpoints.hit("replace.after_create")
    with db.begin() as session:
        outcome = replacement.record_key(
            session,
            order_id=step.order_id,
            key_id=created.id,
            api_key=created.api_key,
            expires_at=created.expires_at,
            box=box,
            lease=lease,
            now=clock(),
        )
    if outcome is Recorded.LOST:
        ensure_deleted(gateway, created.id)
        raise Retry("lost the lease while making the replacement key", 0.5)
