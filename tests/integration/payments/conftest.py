"""Fixtures for the Stripe provider against localstripe and the Checkout fake."""

from __future__ import annotations

import pytest
import stripe

from cheaptokens.payments.stripe_checkout import StripePayments, make_stripe_client
from support.stripe_fakes import FakeStripe
from support.stripe_fakes.localstripe import TEST_API_KEY

WEBHOOK_SECRET = "whsec_test_FAKE_cheaptokens_not_real"


# ``localstripe`` and ``fake_stripe`` live in tests/conftest.py (shared with the shop tests).


@pytest.fixture
def stripe_client(fake_stripe: FakeStripe) -> stripe.StripeClient:
    return make_stripe_client(TEST_API_KEY, api_base=fake_stripe.base_url, max_network_retries=0)


@pytest.fixture
def provider(stripe_client: stripe.StripeClient) -> StripePayments:
    return StripePayments(stripe_client, WEBHOOK_SECRET)
