"""Test-only Stripe stand-ins.

- ``FakeStripe``: a tiny HTTP server speaking Stripe's Checkout Sessions API (which localstripe
  lacks), replaying idempotent POSTs, and forwarding every other ``/v1/...`` call to localstripe
  so refunds hit a real emulated PaymentIntent.
- ``LocalStripe``: runs ``localstripe`` as a subprocess on a free port.
- ``stripe_event``: a webhook body shaped like a Stripe Event.
"""

from support.stripe_fakes.checkout_server import FakeStripe, RecordedRequest
from support.stripe_fakes.events import stripe_event
from support.stripe_fakes.localstripe import LocalStripe

__all__ = ["FakeStripe", "LocalStripe", "RecordedRequest", "stripe_event"]
