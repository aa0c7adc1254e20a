"""An in-memory :class:`~cheaptokens.venice.types.VeniceGateway` for service-level tests.

One :class:`FakeVenice` stands for one Venice account reached with its ADMIN key. It follows
the contract the real :class:`~cheaptokens.venice.client.VeniceClient` documents
(docs/venice-facts.md §1, §6) for the calls the shop makes:

- ``create_key`` returns the secret once (``VENICE_INFERENCE_KEY_…``); the 21st creation in a
  sliding minute raises :class:`RateLimited`, the 501st active key :class:`InvalidRequest`;
- ``list_keys`` returns the *active* keys only (not deleted, not expired), newest first;
- ``get_key``, ``update_key`` and ``delete_key`` raise :class:`NotFound` for an unknown,
  deleted or expired id; ``update_key`` changes only the fields it is given;
- ``balance`` answers what the test set (``diem_allocation``).

Time comes from the ``clock`` it is given (the test's clock), so a key dies at its
``expires_at`` as it does in Venice.

Failures are scripted per method with :meth:`FakeVenice.fail`: the next call(s) raise the
client's own exception (``RateLimited``, ``Unavailable``, ``OutcomeUnknown``, ``NotFound``, …);
``take_effect=True`` lets the call happen first and then raises, which is what
``OutcomeUnknown`` means for a creation whose answer was lost. :meth:`FakeVenice.on` runs a
callback just before a method acts (e.g. another worker taking a job over mid-call).

Every call is recorded in :attr:`FakeVenice.calls` (and, if given, in a ``journal`` list
shared with other fakes, to check the order of calls across collaborators).
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from cheaptokens.venice import errors
from cheaptokens.venice.limits import CREATION_WINDOW, CREATIONS_PER_MINUTE, MAX_ACTIVE_KEYS
from cheaptokens.venice.types import (
    ApiKey,
    Balance,
    ConsumptionLimit,
    CreatedKey,
    KeyType,
    LimitPeriod,
    ModelPrivacy,
)

_ids = itertools.count(1)


@dataclass
class StoredKey:
    """A key as Venice holds it (the test may read and change it)."""

    id: str
    secret: str
    description: str
    key_type: KeyType
    limit: ConsumptionLimit
    limit_period: LimitPeriod
    created_at: datetime
    expires_at: datetime | None
    deleted_at: datetime | None = None
    model_privacy: ModelPrivacy = "ALL"
    usage_diem: Decimal = Decimal(0)
    usage_usd: Decimal = Decimal(0)

    def active(self, now: datetime) -> bool:
        return self.deleted_at is None and (self.expires_at is None or self.expires_at > now)

    def listed(self) -> ApiKey:
        has_limit = self.limit.diem is not None or self.limit.usd is not None
        return ApiKey(
            id=self.id,
            api_key_type=self.key_type,
            description=self.description,
            created_at=self.created_at,
            expires_at=self.expires_at,
            last_used_at=None,
            last6=self.secret[-6:],
            consumption_limits=self.limit,
            limit_period=self.limit_period,
            period_usage_usd=self.usage_usd if has_limit else None,
            period_usage_diem=self.usage_diem if has_limit else None,
            model_privacy=self.model_privacy,
        )


@dataclass(frozen=True)
class Call:
    account: str
    method: str
    args: dict[str, Any]


@dataclass
class _Fault:
    error: errors.VeniceError
    take_effect: bool


@dataclass
class FakeVenice:
    """One Venice account in memory; see the module docstring for the contract it keeps."""

    clock: Callable[[], datetime]
    name: str = "acct"
    diem_allocation: Decimal = Decimal("100")
    journal: list[Call] | None = None
    keys: dict[str, StoredKey] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    _faults: dict[str, deque[_Fault]] = field(default_factory=lambda: defaultdict(deque))
    _hooks: dict[str, list[Callable[[], None]]] = field(default_factory=lambda: defaultdict(list))

    # ------------------------------------------------------------------ scripting
    def fail(
        self,
        method: str,
        error: errors.VeniceError,
        *,
        times: int = 1,
        take_effect: bool = False,
    ) -> None:
        """The next ``times`` calls of ``method`` raise ``error`` (after acting, if
        ``take_effect``)."""
        if not hasattr(self, method):
            raise AttributeError(method)
        for _ in range(times):
            self._faults[method].append(_Fault(error, take_effect))

    def on(self, method: str, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, just before the next call of ``method`` acts."""
        self._hooks[method].append(callback)

    # ------------------------------------------------------------------ inspection
    def active_keys(self) -> list[StoredKey]:
        now = self.clock()
        return [k for k in self.keys.values() if k.active(now)]

    def described(self, description: str) -> list[StoredKey]:
        """Active keys whose description is exactly ``description``."""
        return [k for k in self.active_keys() if k.description == description]

    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    # ------------------------------------------------------------------ the protocol
    def create_key(
        self,
        *,
        description: str,
        consumption_limit: ConsumptionLimit,
        limit_period: LimitPeriod = "EPOCH",
        expires_at: datetime | None = None,
        key_type: KeyType = "INFERENCE",
        model_privacy: ModelPrivacy | None = None,
    ) -> CreatedKey:
        fault = self._enter(
            "create_key",
            description=description,
            consumption_limit=consumption_limit,
            limit_period=limit_period,
            expires_at=expires_at,
            key_type=key_type,
            model_privacy=model_privacy,
        )
        now = self.clock()
        recent = [k for k in self.keys.values() if now - k.created_at < CREATION_WINDOW]
        if len(recent) >= CREATIONS_PER_MINUTE:
            raise errors.RateLimited("rate limit exceeded", method="POST", path="/api_keys")
        if len(self.active_keys()) >= MAX_ACTIVE_KEYS:
            raise errors.InvalidRequest(
                "maximum number of active API keys reached", status=400, path="/api_keys"
            )
        prefix = "VENICE_ADMIN_KEY_" if key_type == "ADMIN" else "VENICE_INFERENCE_KEY_"
        stored = StoredKey(
            id=f"key-{self.name}-{next(_ids):05d}",
            secret=prefix + secrets.token_urlsafe(24),
            description=description,
            key_type=key_type,
            limit=consumption_limit,
            limit_period=limit_period,
            created_at=now,
            expires_at=expires_at,
            model_privacy=model_privacy or "ALL",
        )
        self.keys[stored.id] = stored
        self._leave(fault)
        return CreatedKey(
            id=stored.id,
            api_key=stored.secret,
            api_key_type=key_type,
            description=description,
            expires_at=expires_at,
            consumption_limits=consumption_limit,
            limit_period=limit_period,
            model_privacy=stored.model_privacy,
        )

    def list_keys(self) -> list[ApiKey]:
        fault = self._enter("list_keys")
        listed = sorted(self.active_keys(), key=lambda k: (k.created_at, k.id), reverse=True)
        self._leave(fault)
        return [k.listed() for k in listed]

    def get_key(self, key_id: str) -> ApiKey:
        fault = self._enter("get_key", key_id=key_id)
        found = self._active(key_id, "API key not found")
        self._leave(fault)
        return found.listed()

    def update_key(
        self,
        key_id: str,
        *,
        description: str | None = None,
        consumption_limit: ConsumptionLimit | None = None,
        limit_period: LimitPeriod | None = None,
        expires_at: datetime | None = None,
        model_privacy: ModelPrivacy | None = None,
    ) -> ApiKey:
        fault = self._enter(
            "update_key",
            key_id=key_id,
            description=description,
            consumption_limit=consumption_limit,
            limit_period=limit_period,
            expires_at=expires_at,
            model_privacy=model_privacy,
        )
        found = self._active(key_id, "API key not found or expired")
        if description is not None:
            found.description = description
        if consumption_limit is not None:
            found.limit = consumption_limit
        if limit_period is not None:
            found.limit_period = limit_period
        if expires_at is not None:
            found.expires_at = expires_at
        if model_privacy is not None:
            found.model_privacy = model_privacy
        self._leave(fault)
        # PATCH answers without usage figures (docs/venice-facts.md §1.1).
        return dataclasses.replace(found.listed(), period_usage_usd=None, period_usage_diem=None)

    def delete_key(self, key_id: str) -> None:
        fault = self._enter("delete_key", key_id=key_id)
        found = self._active(key_id, "API key could not be found")
        found.deleted_at = self.clock()
        self._leave(fault)

    def balance(self) -> Balance:
        fault = self._enter("balance")
        self._leave(fault)
        return Balance(
            can_consume=True,
            diem=self.diem_allocation,
            usd=Decimal(0),
            diem_epoch_allocation=self.diem_allocation,
        )

    # ------------------------------------------------------------------ internals
    def _enter(self, method: str, **args: Any) -> _Fault | None:
        call = Call(self.name, method, args)
        self.calls.append(call)
        if self.journal is not None:
            self.journal.append(call)
        hooks, self._hooks[method] = self._hooks[method], []
        for hook in hooks:
            hook()
        fault = self._faults[method].popleft() if self._faults[method] else None
        if fault is not None and not fault.take_effect:
            raise fault.error
        return fault

    @staticmethod
    def _leave(fault: _Fault | None) -> None:
        if fault is not None:
            raise fault.error

    def _active(self, key_id: str, message: str) -> StoredKey:
        found = self.keys.get(key_id)
        if found is None or not found.active(self.clock()):
            raise errors.NotFound(message, status=400, path="/api_keys")
        return found
