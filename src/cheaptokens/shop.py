"""Wiring: build every collaborator once from Settings and hand it down (DESIGN "wire once").

:class:`Shop` is what the web app, the worker and the CLI share: the session factory,
one Venice gateway per account, the payment provider, the secret box and the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.orm import Session, sessionmaker

from cheaptokens.config import Settings
from cheaptokens.db import make_engine, make_sessionmaker
from cheaptokens.orders.rules import ShopRules
from cheaptokens.payments import PaymentProvider, SandboxPayments
from cheaptokens.secretbox import SecretBox, load_data_key
from cheaptokens.venice.client import VeniceClient
from cheaptokens.venice.types import VeniceGateway

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Shop:
    settings: Settings
    rules: ShopRules
    sessions: sessionmaker[Session]
    gateways: dict[str, VeniceGateway]
    payments: PaymentProvider
    box: SecretBox
    clock: Clock = utcnow
    #: where buyers' keys work (the sandbox offline, Venice in production)
    buyer_base_url: str = ""
    closers: list[Callable[[], None]] = field(default_factory=list)
    #: read-only sessions (on SQLite they do not queue behind writers); default: ``sessions``
    reads: sessionmaker[Session] | None = None

    @property
    def readonly(self) -> sessionmaker[Session]:
        return self.reads or self.sessions

    @property
    def token_key(self) -> bytes:
        return self.box.mac_key

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def rules_from(settings: Settings) -> ShopRules:
    return ShopRules(
        quote_ttl=timedelta(seconds=settings.quote_ttl_seconds),
        checkout_ttl=timedelta(seconds=settings.checkout_ttl_seconds),
        provision_deadline=timedelta(seconds=settings.provision_deadline_seconds),
        job_lease=timedelta(seconds=settings.job_lease_seconds),
        pool_size=settings.pool_size,
        pool_creation_headroom=settings.pool_creation_headroom,
        sell_fraction=settings.sell_fraction,
        margin_cents=settings.safety_margin_cents,
        min_order_cents=settings.min_order_cents,
        max_order_cents=settings.max_order_cents,
        price_a=settings.price_a,
        price_b=settings.price_b,
        price_beta=settings.price_beta,
        price_floor=settings.price_floor,
    )


def build_payments(settings: Settings, box: SecretBox) -> PaymentProvider:
    if settings.payments == "stripe":
        from cheaptokens.payments.stripe_checkout import StripePayments, make_stripe_client

        client = make_stripe_client(
            settings.stripe_secret_key.get_secret_value(), api_base=settings.stripe_api_base or None
        )
        return StripePayments(client, settings.stripe_webhook_secret.get_secret_value())
    return SandboxPayments(box.mac_key, settings.public_url)


def build_shop(
    settings: Settings,
    *,
    clock: Clock = utcnow,
    http: httpx.Client | None = None,
    gateways: dict[str, VeniceGateway] | None = None,
    payments: PaymentProvider | None = None,
) -> Shop:
    """Everything the shop needs, from ``settings``; tests pass their own ``http``/fakes."""
    engine = make_engine(settings.db_url)
    reads = None
    if settings.db_url.startswith("sqlite"):
        read_engine = make_engine(settings.db_url, readonly=True)
        reads = make_sessionmaker(read_engine)
    box = SecretBox(load_data_key(settings.data_key.get_secret_value(), settings.data_dir))
    closers: list[Callable[[], None]] = [engine.dispose]
    if reads is not None:
        closers.append(read_engine.dispose)
    if gateways is None:
        if http is None:
            http = httpx.Client(timeout=settings.venice_timeout_seconds)
            closers.append(http.close)
        t = settings.venice_timeout_seconds
        timeout = httpx.Timeout(t, connect=min(5.0, t))
        gateways = {
            name: VeniceClient(http, key, base_url=settings.venice_url, timeout=timeout)
            for name, key in settings.account_keys().items()
        }
    return Shop(
        settings=settings,
        rules=rules_from(settings),
        sessions=make_sessionmaker(engine),
        gateways=gateways,
        payments=payments or build_payments(settings, box),
        box=box,
        clock=clock,
        buyer_base_url=settings.venice_url,
        closers=closers,
        reads=reads,
    )
