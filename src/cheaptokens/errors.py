"""The shop's exception tree; the web layer maps it to HTTP in one place.

    ShopError
    ├── InvalidInput          400  bad input; names the offending ``field``
    ├── Refused               403  this buyer may not buy now (their keys overshot repeatedly)
    ├── NotFound              404  no such quote or order (or the token does not match)
    ├── Conflict              409  the request clashes with the current state
    │   ├── QuoteExpired           the quote's lock window has passed
    │   └── IdempotencyMismatch    an Idempotency-Key reused with another body
    ├── SoldOut               409  no capacity left today (says when it returns)
    │   └── HeldOut                what is left is held by open quotes and checkouts
    ├── RateLimited           429  too many quotes/orders from one client
    │   └── HoldLimit              this client already holds its share in unpaid holds
    └── ServiceUnavailable    503  a dependency (Venice, payments) cannot be reached

Venice's own errors live in :mod:`cheaptokens.venice.errors`, payment errors in
:mod:`cheaptokens.payments.errors`; the worker turns them into retries or refunds.
"""

from __future__ import annotations

from datetime import datetime


class ShopError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(ShopError):
    status = 400
    code = "invalid_input"


class Refused(ShopError):
    status = 403
    code = "refused"


class NotFound(ShopError):
    status = 404
    code = "not_found"


class Conflict(ShopError):
    status = 409
    code = "conflict"


class QuoteExpired(Conflict):
    code = "quote_expired"


class IdempotencyMismatch(Conflict):
    code = "idempotency_mismatch"


class SoldOut(ShopError):
    status = 409
    code = "sold_out"

    def __init__(self, message: str, *, available_cents: int, returns_at: datetime) -> None:
        super().__init__(message)
        self.available_cents = available_cents
        self.returns_at = returns_at


class HeldOut(SoldOut):
    code = "held_out"


class RateLimited(ShopError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HoldLimit(RateLimited):
    code = "hold_limit"


class ServiceUnavailable(ShopError):
    status = 503
    code = "service_unavailable"
