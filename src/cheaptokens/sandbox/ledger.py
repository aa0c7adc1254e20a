"""Accounts, keys and money: the in-memory state behind the sandbox routes.

Every public method takes ``now`` and must be called with :attr:`Ledger.lock` held
(the app does this), so concurrent requests see a consistent ledger. Money is
:class:`~decimal.Decimal` throughout (1 DIEM = $1).

Rules emulated (docs/venice-facts.md §1.7, §2.3, §6): DIEM refills to the allocation at
00:00 UTC and
unspent DIEM is lost; a call is charged after it runs to ONE currency, DIEM first
then USD, which may leave it slightly negative; per-key caps apply over the
``limitPeriod`` window; 20 key creations per sliding minute and 500 active keys per
account; expired keys are hidden and not counted.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from cheaptokens.venice.limits import CREATION_WINDOW, CREATIONS_PER_MINUTE, MAX_ACTIVE_KEYS

from . import errors
from .validation import UNSET, KeyFields

_ZERO = Decimal(0)
#: Charges older than this are folded into per-currency lifetime totals: no limit window
#: (a UTC day, a UTC month) or the trailing-seven-days usage reaches that far back.
FOLD_AFTER = timedelta(days=35)


def hash_secret(secret: str) -> str:
    """Keys are looked up by hash; the secret itself is only in the create response."""
    return hashlib.sha256(secret.encode()).hexdigest()


def epoch_start(now: datetime) -> datetime:
    """00:00 UTC of ``now``'s day."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def period_start(period: str, now: datetime) -> datetime | None:
    """Start of the current limit window; ``None`` for LIFETIME (no window)."""
    if period == "EPOCH":
        return epoch_start(now)
    if period == "MONTH":
        return epoch_start(now).replace(day=1)
    return None


@dataclass(slots=True)
class Charge:
    at: datetime
    currency: str  # "DIEM" or "USD"
    amount: Decimal


@dataclass(slots=True)
class Key:
    id: str
    account_id: str
    secret_hash: str
    last6: str
    api_key_type: str
    description: str
    created_at: datetime
    expires_at: datetime | None
    limits: dict[str, Decimal | None]
    limit_period: str = "EPOCH"
    model_privacy: str = "ALL"
    last_used_at: datetime | None = None
    charges: list[Charge] = field(default_factory=list)
    #: lifetime totals of charges older than :data:`FOLD_AFTER`, per currency
    archived: dict[str, Decimal] = field(default_factory=dict)

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at

    def has_limit(self) -> bool:
        return any(v is not None for v in self.limits.values())

    def spent(self, currency: str, since: datetime | None) -> Decimal:
        recent = sum(
            (
                c.amount
                for c in self.charges
                if c.currency == currency and (since is None or c.at >= since)
            ),
            _ZERO,
        )
        return recent + self.archived.get(currency, _ZERO) if since is None else recent

    def fold(self, now: datetime) -> None:
        """Fold charges older than :data:`FOLD_AFTER` into :attr:`archived`."""
        horizon = now - FOLD_AFTER
        if all(c.at >= horizon for c in self.charges):
            return
        keep = []
        for charge in self.charges:
            if charge.at < horizon:
                self.archived[charge.currency] = (
                    self.archived.get(charge.currency, _ZERO) + charge.amount
                )
            else:
                keep.append(charge)
        self.charges = keep

    def period_spent(self, currency: str, now: datetime) -> Decimal:
        return self.spent(currency, period_start(self.limit_period, now))


@dataclass(slots=True)
class Account:
    id: str
    diem_allocation: Decimal
    usd: Decimal
    diem: Decimal
    epoch: date
    keys: dict[str, Key] = field(default_factory=dict)
    creations: deque[datetime] = field(default_factory=deque)

    def refresh(self, now: datetime) -> None:
        """Refill DIEM at the first touch of a new UTC day (unspent DIEM is lost)."""
        if now.date() != self.epoch:
            self.epoch = now.date()
            self.diem = self.diem_allocation

    def active_keys(self, now: datetime) -> list[Key]:
        return [k for k in self.keys.values() if k.active(now)]


class Ledger:
    """All accounts and keys of one sandbox.

    :attr:`version` grows with every change worth persisting (accounts, keys, charges).
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.accounts: dict[str, Account] = {}
        self._by_secret: dict[str, Key] = {}
        self.version = 0

    def restore(self, accounts: Iterable[Account]) -> None:
        """Replace the whole state (used when loading a state file)."""
        self.accounts = {a.id: a for a in accounts}
        self._by_secret = {
            k.secret_hash: k for a in self.accounts.values() for k in a.keys.values()
        }
        self.version += 1

    def knows_secret(self, secret: str) -> bool:
        return hash_secret(secret) in self._by_secret

    # -- accounts -------------------------------------------------------------------
    def add_account(self, *, admin_key: str, diem: Decimal, usd: Decimal, now: datetime) -> Account:
        """A new account whose ADMIN key is ``admin_key`` (listed like any other key)."""
        if hash_secret(admin_key) in self._by_secret:
            raise ValueError("that admin key is already in use")
        account = Account(
            id=str(uuid.uuid4()), diem_allocation=diem, usd=usd, diem=diem, epoch=now.date()
        )
        self.accounts[account.id] = account
        self.version += 1
        self._insert_key(
            account,
            admin_key,
            api_key_type="ADMIN",
            description="Sandbox admin key",
            expires_at=None,
            limits={},
            now=now,
        )
        return account

    def _insert_key(
        self,
        account: Account,
        secret: str,
        *,
        api_key_type: str,
        description: str,
        expires_at: datetime | None,
        limits: dict[str, Decimal | None],
        now: datetime,
        limit_period: str = "EPOCH",
        model_privacy: str = "ALL",
    ) -> Key:
        key = Key(
            id=str(uuid.uuid4()),
            account_id=account.id,
            secret_hash=hash_secret(secret),
            last6=secret[-6:],
            api_key_type=api_key_type,
            description=description,
            created_at=now,
            expires_at=expires_at,
            limits={c: limits.get(c) for c in ("usd", "diem", "vcu")},
            limit_period=limit_period,
            model_privacy=model_privacy,
        )
        account.keys[key.id] = key
        self._by_secret[key.secret_hash] = key
        return key

    # -- authentication ---------------------------------------------------------------
    def authenticate(self, secret: str, now: datetime) -> tuple[Key, Account]:
        """The live key for ``secret``: unknown, revoked or expired → 401
        (docs/venice-facts.md §4.3)."""
        key = self._by_secret.get(hash_secret(secret))
        if key is None or not key.active(now):
            raise errors.standard(401, errors.AUTH_FAILED)
        account = self.accounts[key.account_id]
        account.refresh(now)
        return key, account

    # -- key management ---------------------------------------------------------------
    def create_key(self, account: Account, fields: KeyFields, now: datetime) -> tuple[Key, str]:
        """Create a key; returns it and its secret (shown only once)."""
        while account.creations and account.creations[0] <= now - CREATION_WINDOW:
            account.creations.popleft()
        if len(account.creations) >= CREATIONS_PER_MINUTE:
            reset = account.creations[0] + CREATION_WINDOW
            error = errors.standard(
                429,
                errors.RATE_LIMITED,
                {
                    "x-ratelimit-limit-requests": str(CREATIONS_PER_MINUTE),
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": str(int(reset.timestamp() * 1000)),
                    "retry-after": str(max(1, int((reset - now).total_seconds() + 0.999))),
                },
            )
            # an endpoint-level limit: SK-KEYS says those log ``endpoint:api/v1/...``
            error.rate_limit = ("RPM", "endpoint:api/v1/api_keys")
            raise error
        if len(account.active_keys(now)) >= MAX_ACTIVE_KEYS:
            raise errors.standard(400, errors.TOO_MANY_KEYS)
        prefix = "VENICE_ADMIN_KEY_" if fields.api_key_type == "ADMIN" else "VENICE_INFERENCE_KEY_"
        secret = prefix + secrets.token_urlsafe(30).replace("-", "x").replace("_", "y")
        key = self._insert_key(
            account,
            secret,
            api_key_type=fields.api_key_type,
            description=fields.description,
            expires_at=None if fields.expires_at is UNSET else fields.expires_at,
            limits={} if fields.limits is UNSET else fields.limits,
            now=now,
            limit_period="EPOCH" if fields.limit_period is UNSET else fields.limit_period,
            model_privacy="ALL" if fields.model_privacy is UNSET else fields.model_privacy,
        )
        account.creations.append(now)
        self.version += 1
        return key, secret

    def live_key(self, account: Account, key_id: str, now: datetime, message: str) -> Key:
        """A non-expired key of ``account`` or a 400 with ``message`` (docs/venice-facts.md §6)."""
        key = account.keys.get(key_id)
        if key is None or not key.active(now):
            raise errors.standard(400, message)
        return key

    def update_key(self, account: Account, fields: KeyFields, now: datetime) -> Key:
        """PATCH: only the sent fields change; limits change per sent currency."""
        key = self.live_key(account, fields.id, now, errors.KEY_NOT_FOUND_OR_EXPIRED)
        if fields.description is not UNSET:
            key.description = fields.description
        if fields.expires_at is not UNSET:
            key.expires_at = fields.expires_at
        if fields.limits is not UNSET:
            key.limits.update(fields.limits)
        if fields.limit_period is not UNSET:
            key.limit_period = fields.limit_period
        if fields.model_privacy is not UNSET:
            key.model_privacy = fields.model_privacy
        self.version += 1
        return key

    def delete_key(self, account: Account, key_id: str) -> None:
        """Revoke at once. Expired keys can be deleted too (sandbox reading: docs/venice-facts.md §6
        leaves it open, and the shop deletes keys after expiry)."""
        key = account.keys.pop(key_id, None)
        if key is None:
            raise errors.standard(400, errors.KEY_NOT_FOUND_DELETE)
        self._by_secret.pop(key.secret_hash, None)
        self.version += 1

    # -- billing ----------------------------------------------------------------------
    def choose_currency(self, key: Key, account: Account, now: datetime) -> str:
        """Admission (before the call): the currency this call will be charged to, or a
        402 with the exact docs/venice-facts.md §4.2 message.

        DIEM first when the account has DIEM and the key's DIEM cap is not reached, then
        USD on the same terms. A ``usd`` cap of 0 means the key never spends USD, and the
        caller sees the insufficient-balance message (the "zero USD limit trap",
        docs/venice-facts.md §6).
        """
        diem_cap, usd_cap = key.limits.get("diem"), key.limits.get("usd")
        diem_blocked = diem_cap is not None and key.period_spent("DIEM", now) >= diem_cap
        usd_blocked = usd_cap is not None and key.period_spent("USD", now) >= usd_cap
        if account.diem > 0 and not diem_blocked:
            return "DIEM"
        if account.usd > 0 and not usd_blocked:
            return "USD"
        if account.diem > 0 and diem_blocked:
            raise errors.standard(402, errors.DIEM_LIMIT_EXCEEDED)
        if account.usd > 0 and usd_cap is not None and usd_cap > 0:
            raise errors.standard(402, errors.USD_LIMIT_EXCEEDED)
        raise errors.standard(402, errors.INSUFFICIENT_BALANCE)

    def admit(self, key: Key, account: Account, now: datetime) -> str:
        """Admit an inference call: the currency it will be billed to (or a 402); the key
        counts as used from now."""
        currency = self.choose_currency(key, account, now)
        key.last_used_at = now
        return currency

    def charge(
        self, key: Key, account: Account, currency: str, amount: Decimal, now: datetime
    ) -> None:
        """Bill a finished call to one currency (may go slightly negative,
        docs/venice-facts.md §2.3)."""
        key.last_used_at = now
        self.version += 1
        if amount <= 0:
            return
        key.fold(now)
        key.charges.append(Charge(now, currency, amount))
        if currency == "DIEM":
            account.diem -= amount
        else:
            account.usd -= amount

    def key_balances(self, key: Key, account: Account, now: datetime) -> dict[str, Decimal]:
        """Account balances clamped to the key's remaining limit (docs/venice-facts.md §1.5).

        Sandbox reading: a negative account balance (a call overshot, §2.3) is shown as it
        is; a key past its cap has 0 remaining, never a negative remainder.
        """
        out = {}
        for currency, balance in (("USD", account.usd), ("DIEM", account.diem)):
            cap = key.limits.get(currency.lower())
            value = balance
            if cap is not None:
                value = min(value, max(cap - key.period_spent(currency, now), _ZERO))
            out[currency] = value
        return out
