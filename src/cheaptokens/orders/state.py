"""The order state machine (the transitions themselves are in :mod:`.transitions`).

awaiting_payment ──paid──▶ paid ──key made──▶ fulfilled ──00:00 UTC──▶ expired
      │                     │                    │
      ├─declined/expired──▶ cancelled ──late payment──▶ paid
      │                     ├─no key by deadline / sold out──▶ refunded
      │                     └─refund itself failed──────────▶ failed ──operator retry──▶ refunded
      └────────────────────────────────── operator refund (from paid/fulfilled) ─▶ refunded
                                                                 (or failed, if the refund fails)
fulfilled ──key cannot spend what it holds──▶ replacing ──new key──▶ fulfilled
                                                  └─no stock, or too late──▶ refunded (pro rata)
x402: awaiting_payment ──authorization verified──▶ paid ──key made, payment settled──▶ fulfilled
                                                    └─the authorization did not settle──▶ cancelled
"""

from __future__ import annotations

from typing import Final

from cheaptokens.errors import Conflict

AWAITING_PAYMENT: Final = "awaiting_payment"
PAID: Final = "paid"
FULFILLED: Final = "fulfilled"
EXPIRED: Final = "expired"
REFUNDED: Final = "refunded"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
REPLACING: Final = "replacing"

ALLOWED: Final[dict[str, frozenset[str]]] = {
    AWAITING_PAYMENT: frozenset({PAID, CANCELLED}),
    CANCELLED: frozenset({PAID}),  # a payment that arrives after the checkout lapsed
    # paid -> cancelled: only an x402 order whose authorized payment did not settle
    PAID: frozenset({FULFILLED, REFUNDED, FAILED, CANCELLED}),
    FULFILLED: frozenset({EXPIRED, REFUNDED, FAILED, REPLACING}),
    REPLACING: frozenset({FULFILLED, REFUNDED, FAILED}),
    FAILED: frozenset({REFUNDED}),  # an operator retries the refund
    EXPIRED: frozenset(),
    REFUNDED: frozenset(),
}

TERMINAL: Final = frozenset({EXPIRED, REFUNDED})


def check_transition(current: str, new: str) -> None:
    """Raise :class:`Conflict` unless ``current -> new`` is an edge of the machine."""
    if new not in ALLOWED.get(current, frozenset()):
        raise Conflict(f"an order cannot go from {current} to {new}")
