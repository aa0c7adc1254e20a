"""A shop at service level for the unit tests of ``orders``, ``inventory`` and the worker.

No HTTP and no sandbox server: a real SQLite file (migrated once per session with
``cheaptokens.migrate.upgrade`` and emptied before each test, see :func:`db`),
:class:`support.fake_venice.FakeVenice` per account, the real
:class:`~cheaptokens.payments.SandboxPayments` behind a thin wrapper that records refunds and
can refuse them, and a hand-moved :class:`Clock` that the worker functions take as their
``clock`` collaborator (the domain functions are given ``now`` explicitly).

The builders below move an order through the shop's own use cases — ``place_order``,
the sandbox checkout, ``record_payment_event``, ``worker.provision`` — so every order a test
starts from was made the way production makes it.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from cheaptokens import inventory, jobs, migrate
from cheaptokens.config import Settings
from cheaptokens.db import Database, open_database
from cheaptokens.inventory import keyroom, pool
from cheaptokens.models import AccountDay, Alert, Base, Job, LedgerEntry, Order, PoolKey
from cheaptokens.orders import transitions
from cheaptokens.orders.payment_events import record_payment_event
from cheaptokens.orders.rules import ShopRules, pool_key_description
from cheaptokens.payments import PaymentEvent, SandboxPayments
from cheaptokens.payments.errors import PaymentError, RefundFailed
from cheaptokens.payments.types import Refund
from cheaptokens.secretbox import SecretBox
from cheaptokens.times import next_midnight
from cheaptokens.venice.types import ConsumptionLimit
from cheaptokens.worker import maintenance
from cheaptokens.worker.provision import provision
from cheaptokens.worker.refund import refund
from support.fake_venice import Call, FakeVenice

#: Noon UTC: half the day left, far from midnight unless a test moves there.
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DAY = START.date()
MIDNIGHT = datetime(2026, 11, 26, tzinfo=UTC)
A, B = "acct-a", "acct-b"
#: Allocations in cents: with sell fraction 0.9 and a margin of 100 split evenly,
#: A can sell 9000 - 50 = 8950 and B 4500 - 50 = 4450.
ALLOCATIONS = {A: 10_000, B: 5_000}


class Clock:
    """The time the worker functions read (``clock()``); tests move it by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def _base_rules() -> ShopRules:
    settings = Settings(
        quote_ttl_seconds=60,
        checkout_ttl_seconds=900,
        provision_deadline_seconds=600,
        job_lease_seconds=60,
        sell_fraction=Decimal("0.9"),
        safety_margin_cents=100,
        min_order_cents=100,
        max_order_cents=50_000,
        pool_size=0,
        pool_creation_headroom=5,
    )
    return ShopRules.from_settings(settings)


_BASE_RULES = _base_rules()


def make_rules(**overrides: Any) -> ShopRules:
    """The rules the tests assume (every value they rely on is spelled out above)."""
    return dataclasses.replace(_BASE_RULES, **overrides)


class ScriptedPayments:
    """The real sandbox provider, recording each refund; :meth:`fail_refund` makes the next
    refund(s) raise a payment error instead (``RefundFailed``, ``PaymentProviderUnavailable``)."""

    name = "sandbox"

    def __init__(self, inner: SandboxPayments, journal: list[Call]) -> None:
        self.inner = inner
        self.journal = journal
        self.refunds: list[Refund] = []
        self._faults: deque[PaymentError] = deque()

    def fail_refund(self, error: PaymentError, *, times: int = 1) -> None:
        self._faults.extend([error] * times)

    def refund(self, *, payment_ref: str, amount_cents: int, idempotency_key: str) -> Refund:
        args = {"payment_ref": payment_ref, "amount_cents": amount_cents, "key": idempotency_key}
        self.journal.append(Call("payments", "refund", args))
        if self._faults:
            raise self._faults.popleft()
        done = self.inner.refund(
            payment_ref=payment_ref, amount_cents=amount_cents, idempotency_key=idempotency_key
        )
        self.refunds.append(done)
        return done

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Env:
    """One shop: its database, rules, clock, Venice accounts and payment provider."""

    db: Database
    rules: ShopRules
    clock: Clock
    box: SecretBox
    payments: ScriptedPayments
    gateways: dict[str, FakeVenice]
    journal: list[Call] = field(default_factory=list)

    @property
    def now(self) -> datetime:
        return self.clock()

    @property
    def token_key(self) -> bytes:
        return self.box.mac_key


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One SQLite file per test session, migrated with the shop's own Alembic migrations."""
    url = f"sqlite:///{tmp_path_factory.mktemp('unit-db') / 'shop.db'}"
    migrate.upgrade(url)
    database, engines = open_database(url)
    try:
        yield database
    finally:
        for engine in engines:
            engine.dispose()


def empty(database: Database) -> None:
    """Delete every row of every table (children first): the schema stays as migrated."""
    with database.begin() as s:
        for table in reversed(Base.metadata.sorted_tables):
            s.execute(table.delete())


@pytest.fixture
def db(migrated_database: Database) -> Database:
    """The migrated database, empty: every test starts from no rows at all.

    The file and its engines are shared by the session because SQLAlchemy caches compiled
    statements per engine: a fresh engine per test recompiled every statement and made each
    test about twice as slow. Emptying the tables costs ~2 ms.
    """
    empty(migrated_database)
    return migrated_database


def make_env(
    database: Database,
    *,
    allocations: dict[str, int] | None = None,
    now: datetime = START,
    **rules: Any,
) -> Env:
    """A shop on ``database`` whose accounts have ``allocations`` (cents) recorded."""
    allocations = ALLOCATIONS if allocations is None else allocations
    clock = Clock(now)
    journal: list[Call] = []
    box = SecretBox(bytes(range(32)))
    gateways = {
        name: FakeVenice(
            clock=clock, name=name, diem_allocation=Decimal(cents) / 100, journal=journal
        )
        for name, cents in allocations.items()
    }
    with database.begin() as s:
        for name, cents in allocations.items():
            inventory.record_allocation(s, account=name, allocation_cents=cents, now=now)
    payments = ScriptedPayments(SandboxPayments(box.mac_key, "http://testserver"), journal)
    return Env(database, make_rules(**rules), clock, box, payments, gateways, journal)


@pytest.fixture
def env(db: Database) -> Env:
    """Two accounts (A: $100, B: $50 a day), noon, the warm pool off."""
    return make_env(db)


# ----------------------------------------------------------------------------- builders
def place(
    env: Env, credit_cents: int = 500, *, checkout: bool = True, **kwargs: Any
) -> transitions.Placed:
    """An order awaiting payment, with a sandbox checkout attached (as ``flows.new_order``)."""
    with env.db.begin() as s:
        placed = transitions.place_order(
            s,
            rules=env.rules,
            token_key=env.token_key,
            provider=env.payments.name,
            now=env.now,
            credit_cents=None if "quote_id" in kwargs else credit_cents,
            **kwargs,
        )
        if checkout and placed.created:
            order = placed.order
            made = env.payments.create_checkout(
                order_id=order.id,
                amount_cents=order.price_cents,
                currency=order.currency,
                description="test",
                success_url="http://testserver/ok",
                cancel_url="http://testserver/cancel",
                expires_at=order.checkout_expires_at,
            )
            transitions.attach_checkout(s, order, checkout=made, now=env.now)
    return placed


def checkout_event(env: Env, order_id: str, outcome: str = "paid") -> PaymentEvent:
    """The event the sandbox checkout page produces when the buyer presses a button."""
    url = get_order(env, order_id).checkout_url
    assert url is not None
    return env.payments.inner.outcome(url.rsplit("/", 1)[-1], outcome, env.now)  # type: ignore[arg-type]


def apply(env: Env, event: PaymentEvent) -> Order | None:
    with env.db.begin() as s:
        return record_payment_event(s, event=event, provider=env.payments.name, now=env.now)


def pay(env: Env, order_id: str) -> PaymentEvent:
    event = checkout_event(env, order_id)
    apply(env, event)
    return event


def paid(env: Env, credit_cents: int = 500) -> str:
    """A paid order (its provision job queued); its id."""
    order_id = place(env, credit_cents).order.id
    pay(env, order_id)
    return order_id


def claim(env: Env, kind: str, order_id: str, worker: str = "w1") -> jobs.Lease:
    """Lease the due job ``kind`` of ``order_id`` to ``worker`` with :func:`jobs.claim` (as
    the worker loop does); due jobs of other orders claimed on the way are handed back."""
    with env.db.begin() as s:
        others = []
        while True:
            job = jobs.claim(
                s, worker=worker, now=env.now, kinds=(kind,), lease=env.rules.job_lease
            )
            assert job is not None, f"no {kind} job due for {order_id}"
            if job.order_id == order_id:
                break
            others.append(job)
        for other in others:
            other.locked_until, other.locked_by, other.attempts = None, None, other.attempts - 1
        return jobs.Lease(job_id=job.id, worker=worker)


def run_provision(env: Env, order_id: str, worker: str = "w1") -> None:
    """Claim and run the order's provision job once, as ``Worker.run_one`` does; a
    :class:`jobs.Retry` is recorded on the job and raised again."""
    lease = claim(env, jobs.PROVISION, order_id, worker)
    try:
        provision(
            db=env.db,
            gateways=env.gateways,
            box=env.box,
            rules=env.rules,
            clock=env.clock,
            order_id=order_id,
            lease=lease,
        )
    except jobs.Retry as exc:
        with env.db.begin() as s:
            jobs.retry_later(
                s, job_id=lease.job_id, worker=worker, now=env.now, delay=exc.delay, error=str(exc)
            )
        raise
    with env.db.begin() as s:
        jobs.finish(s, job_id=lease.job_id, worker=worker)


def run_refund(env: Env, order_id: str) -> None:
    refund(
        db=env.db, gateways=env.gateways, payments=env.payments, clock=env.clock, order_id=order_id
    )


def fulfilled(env: Env, credit_cents: int = 500) -> str:
    order_id = paid(env, credit_cents)
    run_provision(env, order_id)
    return order_id


def cancelled(env: Env, credit_cents: int = 500) -> str:
    order_id = place(env, credit_cents).order.id
    apply(env, checkout_event(env, order_id, "declined"))
    return order_id


def refund_requested(env: Env, order_id: str, reason: str = "test") -> None:
    with env.db.begin() as s:
        order = s.get(Order, order_id)
        assert order is not None
        transitions.request_refund(s, order=order, reason=reason, now=env.now)


def refunded(env: Env, credit_cents: int = 500) -> str:
    order_id = paid(env, credit_cents)
    refund_requested(env, order_id)
    run_refund(env, order_id)
    return order_id


def failed(env: Env, credit_cents: int = 500) -> str:
    """A paid order whose refund the provider refused."""
    order_id = paid(env, credit_cents)
    refund_requested(env, order_id)
    env.payments.fail_refund(RefundFailed("refused", provider="sandbox"))
    run_refund(env, order_id)
    return order_id


def replacing(env: Env, credit_cents: int = 500) -> str:
    """A fulfilled order whose key could no longer spend: a replacement is under way."""
    order_id = fulfilled(env, credit_cents)
    with env.db.begin() as s:
        order = s.get(Order, order_id)
        assert order is not None
        transitions.begin_replacement(s, order=order, reason="test", now=env.now)
    return order_id


def expired(env: Env, credit_cents: int = 500) -> str:
    """A fulfilled order whose key was deleted after 00:00 UTC (the clock stays there)."""
    order_id = fulfilled(env, credit_cents)
    env.clock.now = get_order(env, order_id).key_expires_at  # type: ignore[assignment]
    maintenance.expire_keys(db=env.db, gateways=env.gateways, clock=env.clock)
    return order_id


# ----------------------------------------------------------------------------- looking
def get_order(env: Env, order_id: str) -> Order:
    with env.db.read() as s:
        order = s.get(Order, order_id)
    assert order is not None
    return order


@dataclass(frozen=True)
class Room:
    capacity: int
    sold: int
    reserved: int

    @property
    def left(self) -> int:
        return self.capacity - self.sold - self.reserved


def room(env: Env, account: str, day: date = DAY) -> Room:
    with env.db.read() as s:
        row = s.get(AccountDay, (account, day))
    assert row is not None, f"{account} is not open on {day}"
    return Room(row.capacity_cents, row.sold_cents, row.reserved_cents)


def ledger(env: Env, order_id: str | None = None, kind: str | None = None) -> list[LedgerEntry]:
    stmt = select(LedgerEntry).order_by(LedgerEntry.id)
    if order_id is not None:
        stmt = stmt.where(LedgerEntry.order_id == order_id)
    if kind is not None:
        stmt = stmt.where(LedgerEntry.kind == kind)
    with env.db.read() as s:
        return list(s.scalars(stmt))


def kinds(env: Env, order_id: str) -> list[str]:
    return [e.kind for e in ledger(env, order_id)]


def jobs_of(env: Env, order_id: str) -> dict[str, str]:
    """Job kind -> status for the order."""
    with env.db.read() as s:
        return {j.kind: j.status for j in s.scalars(select(Job).where(Job.order_id == order_id))}


def alerts(env: Env, kind: str | None = None) -> list[Alert]:
    stmt = select(Alert).order_by(Alert.id)
    if kind is not None:
        stmt = stmt.where(Alert.kind == kind)
    with env.db.read() as s:
        return list(s.scalars(stmt))


def pool_rows(env: Env, status: str | None = None) -> list[PoolKey]:
    stmt = select(PoolKey).order_by(PoolKey.created_at, PoolKey.key_id)
    if status is not None:
        stmt = stmt.where(PoolKey.status == status)
    with env.db.read() as s:
        return list(s.scalars(stmt))


def live_keys(env: Env, order_id: str | None = None) -> list[Any]:
    """Active keys in every fake account (those naming ``order_id`` if given)."""
    found = [k for g in env.gateways.values() for k in g.active_keys()]
    if order_id is not None:
        found = [k for k in found if k.description == f"cheaptokens:{order_id}"]
    return found


def pool_key(env: Env, account: str, *, now: datetime | None = None) -> str:
    """A warm pool key on ``account``, made as ``worker.pool.refill`` makes one: capped at 0
    in the fake Venice, sealed in ``pool_keys`` as ready. Its id."""
    now = now or env.now
    created = env.gateways[account].create_key(
        description=pool_key_description(),
        consumption_limit=ConsumptionLimit(diem=Decimal(0), usd=Decimal(0)),
        expires_at=next_midnight(now),
    )
    with env.db.begin() as s:
        pool.add_ready(
            s,
            key_id=created.id,
            account=account,
            day=now.date(),
            secret=env.box.seal(created.api_key, context=created.id),
            last6=created.api_key[-6:],
            expires_at=next_midnight(now),
            now=now,
        )
    return created.id


def use_creation_budget(
    env: Env, account: str, *, seconds_ago: float = 30, count: int = 20
) -> None:
    """``count`` key creations on ``account`` recorded ``seconds_ago`` (its budget used up)."""
    with env.db.begin() as s:
        for _ in range(count):
            keyroom.record_creation(
                s, account=account, now=env.now - timedelta(seconds=seconds_ago)
            )
