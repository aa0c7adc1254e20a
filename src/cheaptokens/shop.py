"""Wiring: build every collaborator once from Settings and hand it down.

:class:`Shop` is what the web app, the worker and the CLI are built from: the database,
one Venice gateway per account, the model catalogue, the payment provider, the secret box
and the clock. Below this module nothing takes a ``Shop``: use cases and worker tasks take
the collaborators they use (docs/architecture.md, "Wire once, pass down").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from cheaptokens.config import Settings
from cheaptokens.db import Database, open_database
from cheaptokens.orders.rules import ShopRules
from cheaptokens.payments import PaymentProvider, SandboxPayments
from cheaptokens.payments.x402 import X402Gateway, X402Terms
from cheaptokens.payments.x402_refunds import X402Refunder
from cheaptokens.secretbox import SecretBox, load_data_key
from cheaptokens.times import Clock, utcnow
from cheaptokens.venice.catalogue import ModelCatalogue
from cheaptokens.venice.client import VeniceClient
from cheaptokens.venice.types import VeniceGateway


@dataclass
class Shop:
    settings: Settings
    rules: ShopRules
    db: Database
    gateways: dict[str, VeniceGateway]
    payments: PaymentProvider
    box: SecretBox
    #: Venice's text models and prices, for the buyer docs
    catalogue: ModelCatalogue
    clock: Clock = utcnow
    #: where buyers' keys work (the sandbox offline, Venice in production)
    buyer_base_url: str = ""
    #: x402 payments (``POST /api/buy``, standing orders); None when switched off
    x402: X402Gateway | None = None
    #: pays x402 refunds from the refund wallet; None without x402 or a refund key
    x402_refunds: X402Refunder | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def token_key(self) -> bytes:
        return self.box.mac_key

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def build_payments(settings: Settings, box: SecretBox) -> PaymentProvider:
    if settings.payments == "stripe":
        from cheaptokens.payments.stripe_checkout import StripePayments, make_stripe_client

        client = make_stripe_client(
            settings.stripe_secret_key.get_secret_value(), api_base=settings.stripe_api_base or None
        )
        return StripePayments(client, settings.stripe_webhook_secret.get_secret_value())
    return SandboxPayments(box.mac_key, settings.public_url)


def build_x402(settings: Settings, http: httpx.Client | None = None) -> X402Gateway | None:
    """The x402 facilitator gateway from settings (None when x402 is off)."""
    if not settings.x402_enabled:
        return None
    terms = X402Terms(
        network=settings.x402_network,
        asset=settings.x402_asset,
        asset_name=settings.x402_asset_name,
        asset_version=settings.x402_asset_version,
        pay_to=settings.x402_pay_to,
        facilitator_url=settings.facilitator_url,
        authorization_seconds=settings.x402_authorization_seconds,
        timeout=settings.x402_facilitator_timeout_seconds,
    )
    return X402Gateway(terms, http=http)


def _venice_http(settings: Settings) -> httpx.Client:
    """A client for Venice. Each account gets one of its own: upkeep works on the accounts at
    once, and httpcore looks at every connection in its pool on each request, so one client
    for fifty accounts spent more CPU on its pool than on the requests (bench/accounts)."""
    t = settings.venice_timeout_seconds
    return httpx.Client(timeout=httpx.Timeout(t, connect=min(5.0, t)))


def build_shop(
    settings: Settings,
    *,
    clock: Clock = utcnow,
    http: httpx.Client | None = None,
    gateways: dict[str, VeniceGateway] | None = None,
    payments: PaymentProvider | None = None,
    x402_http: httpx.Client | None = None,
) -> Shop:
    """Everything the shop needs, from ``settings``; tests pass their own ``http``/fakes."""
    db, engines = open_database(settings.db_url)
    closers: list[Callable[[], None]] = [e.dispose for e in engines]
    box = SecretBox(load_data_key(settings.data_key.get_secret_value(), settings.data_dir))
    own_http = http is None
    if http is None:
        http = _venice_http(settings)
        closers.append(http.close)
    if gateways is None:
        gateways = {}
        for name, admin_key in settings.account_keys().items():
            client = http
            if own_http:  # each account its own client (see _venice_http)
                client = _venice_http(settings)
                closers.append(client.close)
            gateways[name] = VeniceClient(
                client, admin_key, base_url=settings.venice_url, timeout=client.timeout
            )
    x402 = build_x402(settings, x402_http)
    refunder = None
    if x402 is not None:
        closers.append(x402.close)
        key = settings.refund_key
        refunder = X402Refunder(x402, key) if key else None
    return Shop(
        settings=settings,
        rules=ShopRules.from_settings(settings),
        db=db,
        gateways=gateways,
        payments=payments or build_payments(settings, box),
        box=box,
        catalogue=ModelCatalogue(http, settings.venice_url),
        clock=clock,
        buyer_base_url=settings.venice_url,
        x402=x402,
        x402_refunds=refunder,
        closers=closers,
    )
