"""Published price-curve parameters: the set in force at a moment, looked up by hash.

Each set is stored once under its hash, so any quote can be recomputed later from
(time, remaining credit, parameter hash). If no engine has published a set for the
current moment, today's default curve (from the operator's configuration) is
published on first use.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from cheaptokens.db import upsert_insert
from cheaptokens.models import PricingParamsRow, table_of
from cheaptokens.orders.rules import ShopRules
from cheaptokens.pricing.curve import (
    PricingParams,
    default_params,
    params_from_json,
    params_hash,
    params_to_dict,
)


def publish(session: Session, *, params: PricingParams, now: datetime) -> str:
    """Store ``params`` under its hash (idempotent) and return the hash."""
    digest = params_hash(params)
    insert = upsert_insert(session)
    session.execute(
        insert(PricingParamsRow)
        .values(
            hash=digest,
            day=params.day_start.date(),
            valid_from=params.valid_from,
            valid_until=params.valid_until,
            body=params_to_dict(params),
            published_at=now,
        )
        .on_conflict_do_nothing()
    )
    return digest


_PARSED: dict[str, PricingParams] = {}


def _parse(digest: str, body: dict[str, object]) -> PricingParams:
    """Parameter sets never change under their hash, so each is parsed once per process."""
    params = _PARSED.get(digest)
    if params is None:
        params = params_from_json(json.dumps(body))
        if len(_PARSED) > 1000:
            _PARSED.clear()
        _PARSED[digest] = params
    return params


def from_stored(digest: str, body: dict[str, object]) -> PricingParams:
    """A stored set's parameters (parsed once per process)."""
    return _parse(digest, body)


def by_hash(session: Session, digest: str) -> PricingParams | None:
    parsed = _PARSED.get(digest)  # a published set never changes under its hash
    if parsed is not None:
        return parsed
    row = session.get(PricingParamsRow, digest)
    if row is None:
        return None
    return _parse(digest, row.body)


_PARAMS = table_of(PricingParamsRow).c
#: built once: it runs on every price, quote and order
_IN_FORCE = (
    select(_PARAMS.hash, _PARAMS.body)
    .where(_PARAMS.valid_from <= bindparam("now"), _PARAMS.valid_until > bindparam("now"))
    .order_by(_PARAMS.valid_from.desc(), _PARAMS.published_at.desc())
    .limit(1)
)


def find_in_force(session: Session, *, now: datetime) -> tuple[PricingParams, str] | None:
    """The latest parameter set valid at ``now``, if one was published (read-only)."""
    row = session.execute(_IN_FORCE, {"now": now}).first()
    if row is None:
        return None
    return _parse(row.hash, row.body), row.hash


def in_force(
    session: Session, *, now: datetime, capacity_cents: int, rules: ShopRules
) -> tuple[PricingParams, str]:
    """The parameter set valid at ``now`` (the latest published), publishing the default."""
    found = find_in_force(session, now=now)
    if found is not None:
        return found
    params = default_params(
        capacity_cents=max(1, capacity_cents),
        day=now.date(),
        a=rules.price_a,
        b=rules.price_b,
        beta=rules.price_beta,
        floor=rules.price_floor,
    )
    return params, publish(session, params=params, now=now)


def published_at(session: Session, digest: str) -> datetime | None:
    """When the set ``digest`` was first published (None: never)."""
    return session.scalar(
        select(PricingParamsRow.published_at).where(PricingParamsRow.hash == digest)
    )


def is_published(session: Session, *, valid_from: datetime, valid_until: datetime) -> bool:
    """Has a parameter set for exactly ``[valid_from, valid_until)`` been published?"""
    return (
        session.scalar(
            select(PricingParamsRow.hash).where(
                PricingParamsRow.valid_from == valid_from,
                PricingParamsRow.valid_until == valid_until,
            )
        )
        is not None
    )
