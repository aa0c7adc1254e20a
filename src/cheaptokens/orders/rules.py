"""The operator's rules that the order use cases apply, built once from :class:`Settings`.

:class:`~cheaptokens.config.Settings` is the one source of every default; this is only a
typed view of the values the domain needs, plus the names the shop gives its keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Final

from cheaptokens.config import Settings
from cheaptokens.money import dollars_to_cents_up
from cheaptokens.venice.catalogue import TextModel, worst_call
from cheaptokens.venice.limits import CREATIONS_PER_MINUTE, MAX_ACTIVE_KEYS
from cheaptokens.venice.types import ModelPrivacy

#: The shop sells in US dollars (Venice bills DIEM 1:1 with USD).
CURRENCY: Final = "usd"
#: Key room on each account left for the operator's own keys (and the ADMIN key itself).
KEYS_KEPT_FOR_OPERATOR: Final = 10
#: Description prefix of every key the shop makes; reconciliation keys on it.
KEY_PREFIX: Final = "cheaptokens:"
POOL_PREFIX: Final = KEY_PREFIX + "pool:"


#: Which models a sold key may call, as Venice's ``modelPrivacy``: private models only by
#: default (their costliest single call is far below an anonymized model's), or all of them
#: when the operator sells such keys (docs/money-safety.md).
KEY_MODELS: Final[dict[str, ModelPrivacy]] = {"private": "PRIVATE_ONLY", "all": "ALL"}


#: ``Order.payment_provider`` of an order paid with an x402 authorization (``POST /api/buy``).
X402_PROVIDER: Final = "x402"


#: Why a key is replaced when its buyer asks for a new one (a lost key); shown on the order.
REISSUE_REASON: Final = "you asked for a new key"


def order_key_description(order_id: str) -> str:
    """``cheaptokens:<order id>``: how a sold key names its order in Venice."""
    return f"{KEY_PREFIX}{order_id}"


def pool_key_description() -> str:
    return f"{POOL_PREFIX}{uuid.uuid4().hex[:16]}"


def order_of_description(description: str) -> str | None:
    """The order id a shop key's description names; None for pool and foreign keys."""
    if not description.startswith(KEY_PREFIX) or description.startswith(POOL_PREFIX):
        return None
    return description[len(KEY_PREFIX) :]


@dataclass(frozen=True, slots=True)
class ShopRules:
    quote_ttl: timedelta
    checkout_ttl: timedelta
    provision_deadline: timedelta
    #: how long a claimed job is a worker's before another may take it over
    job_lease: timedelta
    sell_fraction: Decimal
    margin_cents: int
    min_order_cents: int
    max_order_cents: int
    price_a: Decimal
    price_b: Decimal
    price_beta: Decimal
    price_floor: Decimal
    #: Warm pool: ready keys kept per account, and creations per minute left to direct sales.
    pool_size: int
    pool_creation_headroom: int
    #: a fixed reserve per account (None: derived from the catalogue, see :func:`reserve_cents`)
    overshoot_reserve_cents: int | None
    overshoot_reserve_calls: int
    overshoot_reserve_max_share: Decimal
    overshoot_reply_tokens: int
    allow_all_models: bool
    all_models_min_order_cents: int
    overshoot_strikes: int
    max_held_share: Decimal
    currency: str = CURRENCY
    creations_per_minute: int = CREATIONS_PER_MINUTE
    max_active_keys: int = MAX_ACTIVE_KEYS - KEYS_KEPT_FOR_OPERATOR

    @classmethod
    def from_settings(cls, settings: Settings) -> ShopRules:
        return cls(
            quote_ttl=timedelta(seconds=settings.quote_ttl_seconds),
            checkout_ttl=timedelta(seconds=settings.checkout_ttl_seconds),
            provision_deadline=timedelta(seconds=settings.provision_deadline_seconds),
            job_lease=timedelta(seconds=settings.job_lease_seconds),
            sell_fraction=settings.sell_fraction,
            margin_cents=settings.safety_margin_cents,
            min_order_cents=settings.min_order_cents,
            max_order_cents=settings.max_order_cents,
            price_a=settings.price_a,
            price_b=settings.price_b,
            price_beta=settings.price_beta,
            price_floor=settings.price_floor,
            pool_size=settings.pool_size,
            pool_creation_headroom=settings.pool_creation_headroom,
            overshoot_reserve_cents=settings.overshoot_reserve_cents,
            overshoot_reserve_calls=settings.overshoot_reserve_calls,
            overshoot_reserve_max_share=settings.overshoot_reserve_max_share,
            overshoot_reply_tokens=settings.overshoot_reply_tokens,
            allow_all_models=settings.allow_all_models,
            all_models_min_order_cents=settings.all_models_min_order_cents,
            overshoot_strikes=settings.overshoot_strikes,
            max_held_share=settings.max_held_share,
        )


#: The reserve per key class when the catalogue cannot be read (and nothing is configured):
#: two calls of about the costliest private and anonymized calls of the 2026-08 catalogue.
FALLBACK_RESERVE_CENTS: Final[dict[str, int]] = {"private": 1_200, "all": 16_000}


def reserve_cents(rules: ShopRules, models: Sequence[TextModel] | None) -> dict[str, int]:
    """The overshoot reserve an account keeps per key class it hosts ("private", "all").

    A configured reserve applies to both. Otherwise it is ``overshoot_reserve_calls`` times
    the costliest single call a key of that class may make, from Venice's catalogue (replies
    bounded by ``overshoot_reply_tokens`` where the catalogue gives no cap), rounded up.
    """
    if rules.overshoot_reserve_cents is not None:
        return dict.fromkeys(KEY_MODELS, rules.overshoot_reserve_cents)
    if not models:
        return {
            k: v * rules.overshoot_reserve_calls // 2 for k, v in FALLBACK_RESERVE_CENTS.items()
        }
    out = {}
    for kind in KEY_MODELS:
        worst = worst_call(
            models,
            private_only=kind == "private",
            max_completion_tokens=rules.overshoot_reply_tokens,
        )
        cost = worst.cost if worst is not None else Decimal(FALLBACK_RESERVE_CENTS[kind]) / 200
        out[kind] = rules.overshoot_reserve_calls * dollars_to_cents_up(cost)
    return out
