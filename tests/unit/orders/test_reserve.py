"""The overshoot reserve each account keeps, per class of key it hosts."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from importlib import resources

from cheaptokens.money import dollars_to_cents_up
from cheaptokens.orders.rules import FALLBACK_RESERVE_CENTS, reserve_cents
from cheaptokens.venice.catalogue import parse_text_models, worst_call
from support.unitkit import make_rules


def shipped_models():  # the catalogue the sandbox serves, as GET /models?type=text gives it
    entries = json.loads(
        resources.files("cheaptokens.sandbox").joinpath("models.json").read_text(),
        parse_float=Decimal,
    )
    return parse_text_models({"data": [e for e in entries if e.get("type") == "text"]})


def test_derived_from_the_costliest_call_each_key_class_may_make() -> None:
    rules = make_rules(overshoot_reserve_cents=None)
    models = shipped_models()
    reserves = reserve_cents(rules, models)
    private = worst_call(models, private_only=True, max_completion_tokens=32_768)
    anyone = worst_call(models, max_completion_tokens=32_768)
    assert private is not None and anyone is not None
    assert reserves == {
        "private": 2 * dollars_to_cents_up(private.cost),
        "all": 2 * dollars_to_cents_up(anyone.cost),
    }
    # Private keys cost far less to protect against than keys that may call every model.
    assert reserves["private"] * 10 < reserves["all"]


def test_a_configured_reserve_wins_and_an_unreadable_catalogue_falls_back() -> None:
    assert reserve_cents(make_rules(overshoot_reserve_cents=500), shipped_models()) == {
        "private": 500,
        "all": 500,
    }
    assert reserve_cents(make_rules(overshoot_reserve_cents=None), None) == FALLBACK_RESERVE_CENTS
    three = dataclasses.replace(make_rules(overshoot_reserve_cents=None), overshoot_reserve_calls=4)
    assert reserve_cents(three, []) == {k: 2 * v for k, v in FALLBACK_RESERVE_CENTS.items()}
