"""Plain data that crosses the boundary between the shop and Venice.

Nothing here imports httpx: the domain code (orders, worker) sees only these
dataclasses and the :class:`VeniceGateway` protocol, never raw JSON.
Amounts of credit are :class:`~decimal.Decimal` dollars (1 DIEM = $1), as
Venice reports them; the shop converts to integer cents at its edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

LimitPeriod = Literal["EPOCH", "MONTH", "LIFETIME"]
KeyType = Literal["INFERENCE", "ADMIN"]
#: Which models a key may call (docs/venice-facts.md §1.2, §4.3): ``ALL``; ``PRIVATE_TEXT``
#: (text and embedding models only if private); ``PRIVATE_ONLY`` (private models only).
ModelPrivacy = Literal["ALL", "PRIVATE_TEXT", "PRIVATE_ONLY"]


@dataclass(frozen=True, slots=True)
class ConsumptionLimit:
    """Per-key caps. ``None`` means no cap in that currency; ``usd=0`` forbids USD spend."""

    usd: Decimal | None = None
    diem: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as listed by ``GET /api_keys`` (no secret: only its last six characters)."""

    id: str
    api_key_type: KeyType
    description: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    last6: str
    consumption_limits: ConsumptionLimit
    limit_period: LimitPeriod
    #: Spend inside the current limit window, when the key has a limit. It may exceed the
    #: cap: Venice bills a call after it ran (docs/venice-facts.md §6 "Overshoot").
    period_usage_usd: Decimal | None = None
    period_usage_diem: Decimal | None = None
    #: ``modelPrivacy`` as Venice reports it (``None`` if the answer did not carry it).
    model_privacy: ModelPrivacy | None = None

    @property
    def period_usage(self) -> Decimal:
        """DIEM plus USD spent inside the current limit window (0 when unknown)."""
        return (self.period_usage_diem or Decimal(0)) + (self.period_usage_usd or Decimal(0))


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """The answer to ``POST /api_keys``: the only time Venice shows the secret."""

    id: str
    api_key: str
    api_key_type: KeyType
    description: str
    expires_at: datetime | None
    consumption_limits: ConsumptionLimit
    limit_period: LimitPeriod
    model_privacy: ModelPrivacy | None = None

    def __repr__(self) -> str:  # never print the secret
        return f"CreatedKey(id={self.id!r}, last6={self.api_key[-6:]!r})"


@dataclass(frozen=True, slots=True)
class Balance:
    """``GET /billing/balance``: DIEM left this epoch, the epoch allocation and USD."""

    can_consume: bool
    diem: Decimal | None
    usd: Decimal | None
    diem_epoch_allocation: Decimal


class VeniceGateway(Protocol):
    """What the shop needs from one Venice account (reached with its ADMIN key)."""

    def create_key(
        self,
        *,
        description: str,
        consumption_limit: ConsumptionLimit,
        limit_period: LimitPeriod = "EPOCH",
        expires_at: datetime | None = None,
        key_type: KeyType = "INFERENCE",
        model_privacy: ModelPrivacy | None = None,
    ) -> CreatedKey: ...

    def list_keys(self) -> list[ApiKey]: ...

    def get_key(self, key_id: str) -> ApiKey: ...

    def update_key(
        self,
        key_id: str,
        *,
        description: str | None = None,
        consumption_limit: ConsumptionLimit | None = None,
        limit_period: LimitPeriod | None = None,
        expires_at: datetime | None = None,
        model_privacy: ModelPrivacy | None = None,
    ) -> ApiKey: ...

    def delete_key(self, key_id: str) -> None: ...

    def balance(self) -> Balance: ...
