"""Pricing: the published curve (pure, Decimal) and the engine that re-plans it hourly.

The shop quotes with :func:`price_fraction` / :func:`quote_price_cents` on a published
:class:`PricingParams`; :class:`PricingEngine` decides which parameters to publish. See
``docs/pricing.md`` for the formula, the rounding rule and a worked example.
"""

from cheaptokens.pricing.curve import (
    PRICING_CONTEXT,
    PricingParams,
    default_params,
    discount,
    hours_left,
    min_credit_cents,
    params_from_json,
    params_hash,
    params_to_json,
    planned_remaining_cents,
    price_fraction,
    quote_price_cents,
    usefulness,
)
from cheaptokens.pricing.engine import EngineConfig, PricingEngine
from cheaptokens.pricing.forecast import Forecast, QuoteRecord, refit_forecast
from cheaptokens.pricing.shape import DEFAULT_SHAPE, ArrivalShape
from cheaptokens.times import next_midnight

__all__ = [
    "DEFAULT_SHAPE",
    "PRICING_CONTEXT",
    "ArrivalShape",
    "EngineConfig",
    "Forecast",
    "PricingEngine",
    "PricingParams",
    "QuoteRecord",
    "default_params",
    "discount",
    "hours_left",
    "min_credit_cents",
    "next_midnight",
    "params_from_json",
    "params_hash",
    "params_to_json",
    "planned_remaining_cents",
    "price_fraction",
    "quote_price_cents",
    "refit_forecast",
    "usefulness",
]
