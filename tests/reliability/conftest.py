"""Fixtures for the reliability tests: a shop that takes payments through Stripe Checkout
(the official SDK against the Checkout fake backed by localstripe)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reliability.paykit import WHSEC
from support.shopkit import Kit, make_kit
from support.stripe_fakes.localstripe import TEST_API_KEY


@pytest.fixture
def stripe_provider(fake_stripe: Any) -> Any:
    from cheaptokens.payments.stripe_checkout import StripePayments, make_stripe_client

    client = make_stripe_client(TEST_API_KEY, api_base=fake_stripe.base_url, max_network_retries=0)
    return StripePayments(client, WHSEC)


@pytest.fixture
def stripe_kit(tmp_path: Any, fake_stripe: Any, stripe_provider: Any) -> Iterator[tuple[Kit, Any]]:
    with make_kit(
        tmp_path, payments=stripe_provider, max_order_cents=10_000, checkout_ttl_seconds=120
    ) as kit:
        yield kit, fake_stripe
