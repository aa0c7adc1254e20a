"""The operator's rules that the order use cases apply (built once from Settings)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class ShopRules:
    quote_ttl: timedelta = timedelta(seconds=60)
    checkout_ttl: timedelta = timedelta(minutes=15)
    provision_deadline: timedelta = timedelta(minutes=10)
    #: how long a claimed job is a worker's before another may take it over
    job_lease: timedelta = timedelta(seconds=60)
    sell_fraction: Decimal = Decimal("0.9")
    margin_cents: int = 100
    min_order_cents: int = 100
    max_order_cents: int = 50_000
    currency: str = "usd"
    price_a: Decimal = Decimal("0.25")
    price_b: Decimal = Decimal("0.70")
    price_beta: Decimal = Decimal("0.25")
    price_floor: Decimal = Decimal("0.10")
    #: Venice: 20 key creations per minute and 500 active keys per account
    #: (docs/venice-facts.md §1.7); some key room is left for the operator's own keys (and the
    #: ADMIN key itself).
    creations_per_minute: int = 20
    max_active_keys: int = 490
    #: Warm pool: ready keys kept per account, and creations per minute left to direct sales.
    pool_size: int = 0
    pool_creation_headroom: int = 5
    #: Description prefix of every key the shop makes; reconciliation keys on it.
    key_prefix: str = "cheaptokens:"
