"""Settings, read once from the environment (prefix ``CHEAPTOKENS_``).

Every value has an offline default: SQLite under ``./var``, the built-in Venice
sandbox and sandbox payments. Production sets at least ``CHEAPTOKENS_VENICE_MODE=live``,
``CHEAPTOKENS_VENICE_ADMIN_KEYS``, ``CHEAPTOKENS_PAYMENTS=stripe`` with the Stripe keys,
``CHEAPTOKENS_DATABASE_URL`` and ``CHEAPTOKENS_DATA_KEY``. ``docs/operations.md`` lists them all.
"""

from __future__ import annotations

import hashlib
import ipaddress
import pathlib
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cheaptokens import passwords

VENICE_API_URL = "https://api.venice.ai/api/v1"
SANDBOX_ADMIN_KEY = "VENICE_ADMIN_KEY_sandbox_not_a_real_key"

# The offline x402 set-up: the Venice sandbox's facilitator and its pretend chain. The chain id
# is no network we know of, so an authorization signed for the sandbox pays nothing anywhere
# else; the addresses are obviously made up.
SANDBOX_X402_NETWORK = "eip155:40240402"
SANDBOX_X402_USDC = "0x5dC0000000000000000000000000000000005DC0"
SANDBOX_X402_USDC_NAME = "USDC"
SANDBOX_X402_USDC_VERSION = "2"
SANDBOX_X402_PAY_TO = "0xC4Ea900000000000000000000000000000000001"
SANDBOX_X402_FACILITATOR = "0xFAC1000000000000000000000000000000000001"
#: The sandbox's refund wallet: a key anyone can read here (it holds only pretend USDC on the
#: pretend chain, which the Venice sandbox funds at start), refused with live Venice.
SANDBOX_X402_REFUND_KEY = (
    "0x" + hashlib.sha256(b"cheaptokens sandbox x402 refund wallet").hexdigest()
)
#: x402 networks that carry no real money (refused with live Venice): the sandbox's, Base
#: Sepolia, Ethereum Sepolia and Holesky, the Optimism / Arbitrum / Polygon test networks and
#: Avalanche Fuji.
TEST_X402_NETWORKS = frozenset(
    {
        SANDBOX_X402_NETWORK,
        "eip155:84532",
        "eip155:11155111",
        "eip155:17000",
        "eip155:11155420",
        "eip155:421614",
        "eip155:80002",
        "eip155:43113",
    }
)


_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_URL_UNSAFE = re.compile(r"[\s\"'<>\\`]")


@dataclass(frozen=True, slots=True)
class OperatorLink:
    href: str  # mailto:… or https://…
    label: str  # what the page shows


def operator_link(contact: str) -> OperatorLink | None:
    """``contact`` as a link: an email address or ``mailto:`` link, or an ``https://`` URL
    with a host; None for anything else (including empty)."""
    contact = contact.strip()
    address = contact[len("mailto:") :] if contact.lower().startswith("mailto:") else contact
    if _EMAIL.fullmatch(address):
        return OperatorLink(f"mailto:{address}", address)
    url = urlsplit(contact)
    if url.scheme.lower() == "https" and url.hostname and not _URL_UNSAFE.search(contact):
        return OperatorLink(contact, contact)
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHEAPTOKENS_",
        extra="ignore",
        populate_by_name=True,
        # A refused setting is named, never echoed: it may be a password or a key.
        hide_input_in_errors=True,
    )

    # Where the shop lives
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    data_dir: pathlib.Path = pathlib.Path("var")
    #: default: sqlite:///<data_dir>/cheaptokens.db; plain ``DATABASE_URL`` is read too
    database_url: str = Field(
        default="", validation_alias=AliasChoices("CHEAPTOKENS_DATABASE_URL", "DATABASE_URL")
    )

    # Venice
    venice_mode: Literal["sandbox", "live"] = "sandbox"
    venice_base_url: str = ""  # default: the sandbox's URL, or Venice's in live mode
    #: ``name=KEY`` pairs separated by commas; in sandbox mode defaults to one sandbox account.
    venice_admin_keys: SecretStr = SecretStr("")
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = 8001
    sandbox_diem: Decimal = Decimal("100")
    venice_timeout_seconds: float = 10.0
    #: accounts worked on at once by upkeep (Venice's limits are per account)
    venice_parallel_accounts: int = Field(default=64, ge=1, le=256)

    # Capacity
    sell_fraction: Decimal = Field(default=Decimal("0.9"), gt=0, le=1)
    safety_margin_cents: int = Field(default=100, ge=0)
    max_order_cents: int = Field(default=50_000, gt=0)
    min_order_cents: int = Field(default=100, gt=0)

    # Money safety (docs/money-safety.md)
    #: per account, credit never sold: it absorbs what keys spend beyond their caps (Venice
    #: bills a call after admitting it). Unset: derived from Venice's model catalogue as
    #: ``overshoot_reserve_calls`` of the costliest single call a key on the account may make
    #: (replies assumed at most ``overshoot_reply_tokens`` where the catalogue gives no cap).
    overshoot_reserve_cents: int | None = Field(default=None, ge=0)
    overshoot_reserve_calls: int = Field(default=2, ge=0, le=100)
    #: the derived reserve takes at most this share of an account's daily allocation (a small
    #: account could otherwise sell nothing; its buyers are still made whole from elsewhere)
    overshoot_reserve_max_share: Decimal = Field(default=Decimal("0.25"), ge=0, le=1)
    overshoot_reply_tokens: int = Field(default=32_768, ge=0)
    #: sell keys that may call every model (modelPrivacy ALL), not only private ones
    allow_all_models: bool = False
    #: the smallest order for such a key
    all_models_min_order_cents: int = Field(default=5_000, gt=0)
    #: how often each account's keys and balance are read (one call each per account)
    watch_seconds: float = Field(default=10.0, gt=0, le=60)
    #: keys of one buyer that went past their cap today before that buyer is refused
    overshoot_strikes: int = Field(default=2, ge=1)

    # Retention: days before the shop forgets rows of no more use (orders, top-ups, the
    # ledger, price sets and the audit log are kept for good; see orders/retention.py)
    retain_quotes_days: int = Field(default=7, ge=1)
    retain_webhook_events_days: int = Field(default=7, ge=4)  # past Stripe's 3-day retries
    retain_jobs_days: int = Field(default=7, ge=1)
    retain_pool_keys_days: int = Field(default=7, ge=1)
    retain_alerts_days: int = Field(default=90, ge=1)
    retain_sessions_days: int = Field(default=7, ge=1)

    # Warm pool of pre-created keys per account (0 turns it off)
    pool_size: int = Field(default=10, ge=0, le=400)
    pool_creation_headroom: int = Field(default=5, ge=0, le=20)

    # Time windows
    quote_ttl_seconds: int = Field(default=60, gt=0)
    #: how long an unpaid checkout holds its credit (a later payment is still sold if it can be)
    checkout_ttl_seconds: int = Field(default=300, gt=0)
    #: the most of the day's capacity one client may hold in unpaid quotes and checkouts
    max_held_share: Decimal = Field(default=Decimal("0.5"), gt=0, le=1)
    provision_deadline_seconds: int = Field(default=600, gt=0)
    job_lease_seconds: int = Field(default=60, gt=0)

    # Buyers' webhooks (docs: "Alerts")
    #: how many events are sent at once (one at a time per order)
    webhook_deliveries: int = Field(default=4, ge=1, le=32)
    #: the whole of one send (connect, TLS, write, read) must end within this
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=30)

    # Pricing curve defaults (the published parameters)
    price_a: Decimal = Decimal("0.25")
    price_b: Decimal = Decimal("0.70")
    price_beta: Decimal = Decimal("0.25")
    price_floor: Decimal = Decimal("0.10")

    # The pricing engine's demand forecast (what the operator expects of a day)
    repricing: bool = True  # re-plan the curve every hour; False keeps the default curve
    forecast_arrivals: Decimal = Field(default=Decimal(100), ge=0)  # quote requests a day
    forecast_willingness: Decimal = Field(default=Decimal("0.75"), gt=0, le=1)
    forecast_request_cents: int = Field(default=500, gt=0)  # median request size
    # learn the forecast each night from the shop's own quotes and sales (the newest learned
    # version is used unless the operator pins one); False: always the settings above
    forecast_learning: bool = True

    # Payments
    payments: Literal["sandbox", "stripe"] = "sandbox"
    stripe_secret_key: SecretStr = SecretStr("")
    stripe_webhook_secret: SecretStr = SecretStr("")
    stripe_api_base: str = ""  # tests point the SDK at a local server

    # x402: agents pay with a signed USDC authorization (docs/operations.md, "x402")
    x402_enabled: bool = True
    #: CAIP-2 network of the payments (sandbox: the Venice sandbox's pretend chain)
    x402_network: str = SANDBOX_X402_NETWORK
    #: the USDC contract on that network, and its EIP-712 domain name and version
    x402_asset: str = SANDBOX_X402_USDC
    x402_asset_name: str = SANDBOX_X402_USDC_NAME
    x402_asset_version: str = SANDBOX_X402_USDC_VERSION
    #: the operator's address that receives the payments
    x402_pay_to: str = SANDBOX_X402_PAY_TO
    #: the facilitator's base URL (default: the Venice sandbox's, ``…/x402``)
    x402_facilitator_url: str = ""
    x402_facilitator_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    #: how long an agent's signed authorization stays valid (``maxTimeoutSeconds``)
    x402_authorization_seconds: int = Field(default=300, ge=30, le=3600)
    #: how long ``POST /api/buy`` works on a paid request before answering 202 (poll then)
    x402_sync_seconds: float = Field(default=15.0, gt=0, le=60)
    #: the refund wallet's private key (0x + 64 hex): x402 refunds are USDC transfers it signs
    #: to the paying wallet. Default: the sandbox's refund wallet offline, none in live mode
    #: (x402 refunds are then handed to the operator). A secret: never logged.
    x402_refund_key: SecretStr = SecretStr("")
    #: how long a sign-in-with-x challenge is valid
    siwx_seconds: int = Field(default=300, ge=30, le=3600)

    # Secrets of the shop itself
    data_key: SecretStr = SecretStr("")  # base64 32 bytes; generated into data_dir offline

    # The operator's dashboard (docs/operations.md, "The operator's dashboard")
    admin_user: str = "admin"
    #: the password, or its hash from ``cheaptokens admin hash-password`` ($argon2id$… or
    #: scrypt:…; see :mod:`cheaptokens.passwords`); empty: the dashboard is closed
    admin_password: SecretStr = SecretStr("")
    #: an operator session ends after this long without a request…
    admin_idle_seconds: int = Field(default=1800, gt=0)
    #: …and this long after the login in any case
    admin_session_seconds: int = Field(default=8 * 3600, gt=0)
    #: login attempts allowed per client address, in the ``limits`` notation: each tier
    #: ("N/period", separated by ";") adds a longer wait once it is used up
    admin_login_client_limits: str = "5/minute;20/hour;100/day"
    #: login attempts allowed per user name, whatever the address (distributed guessing)
    admin_login_user_limits: str = "10/minute;50/hour;200/day"

    #: how buyers reach the operator: an email address, a ``mailto:`` link or an ``https://``
    #: URL; empty (the default) says "the operator of this shop" without a link
    operator_contact: str = ""

    # Abuse limits, per client address
    quotes_per_minute: int = Field(default=60, gt=0)
    orders_per_minute: int = Field(default=20, gt=0)
    #: where the limits count: empty keeps them in each process's memory; a Redis URL
    #: (``redis://host:6379/0``) shares them between every web process
    redis_url: SecretStr = SecretStr("")
    #: the prefix of every key the limits keep in Redis (shops sharing one Redis differ)
    redis_key_prefix: str = Field(default="cheaptokens", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    #: reverse proxies whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed:
    #: addresses or networks separated by commas (``127.0.0.1,10.0.0.0/8``). Empty (the
    #: default): none, the client is the address that connected.
    trusted_proxies: str = ""

    #: how long each server process reuses a computed ``GET /api/pricing`` (0: never)
    pricing_cache_seconds: float = Field(default=1.0, ge=0, le=10)

    # Operations: /metrics and /readyz (docs/operations.md, "Metrics and health")
    #: when set, ``/metrics`` answers only ``Authorization: Bearer <this token>`` (else 401)
    metrics_token: SecretStr = SecretStr("")
    #: serve ``/metrics`` on this port of ``metrics_host`` instead of the shop's own port
    #: (``cheaptokens serve --metrics-port``); unset: on the shop's port
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    #: ``/readyz`` asks Venice at most once per this many seconds (one call, not per account)
    readyz_venice_seconds: float = Field(default=5.0, ge=0, le=300)
    #: ``/readyz`` fails when no worker has beaten for this long (workers beat every 5 s)
    worker_stale_seconds: float = Field(default=60.0, gt=0)

    # Worker
    worker_in_process: bool = True
    worker_poll_seconds: float = 0.2
    worker_threads: int = Field(default=4, ge=1, le=64)

    @field_validator("x402_pay_to", "x402_asset")
    @classmethod
    def _address(cls, value: str) -> str:
        if not re.fullmatch(r"0x[0-9a-fA-F]{40}", value):
            raise ValueError("must be an EVM address: 0x and 40 hexadecimal digits")
        return value

    @field_validator("x402_refund_key")
    @classmethod
    def _private_key(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value().strip()
        if key and not re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", key):
            raise ValueError(
                "CHEAPTOKENS_X402_REFUND_KEY must be a private key: 0x and 64 hexadecimal digits"
            )
        return SecretStr(key)

    @field_validator("x402_network")
    @classmethod
    def _caip2(cls, value: str) -> str:
        if not re.fullmatch(r"eip155:[1-9][0-9]{0,15}", value):
            raise ValueError("must be a CAIP-2 EVM network like eip155:8453")
        return value

    @field_validator("public_url", "venice_base_url", "x402_facilitator_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("operator_contact")
    @classmethod
    def _contact(cls, value: str) -> str:
        value = value.strip()
        if value and operator_link(value) is None:
            raise ValueError(
                "CHEAPTOKENS_OPERATOR_CONTACT must be an email address (like help@yourshop.com), "
                "a mailto: link or an https:// URL"
            )
        return value

    @field_validator("admin_password")
    @classmethod
    def _password_form(cls, value: SecretStr) -> SecretStr:
        if why := passwords.problem(value.get_secret_value()):
            raise ValueError(f"CHEAPTOKENS_ADMIN_PASSWORD: {why}")
        return value

    @field_validator("admin_login_client_limits", "admin_login_user_limits")
    @classmethod
    def _limits(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a list of limits like '5/minute;20/hour;100/day'"
            ) from None
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        for item in (p.strip() for p in value.split(",") if p.strip()):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"CHEAPTOKENS_TRUSTED_PROXIES: {item!r} is not an IP address or network "
                    "(a proxy is named by its address; '*' would let anyone forge theirs)"
                ) from None
        return value

    @property
    def proxies(self) -> list[str]:
        """The trusted proxies' addresses and networks (empty: trust no forwarded header)."""
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]

    @property
    def operator(self) -> OperatorLink | None:
        """The operator's contact as a link for the pages, or None when not configured."""
        return operator_link(self.operator_contact)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'cheaptokens.db'}"

    @property
    def venice_url(self) -> str:
        if self.venice_base_url:
            return self.venice_base_url
        if self.venice_mode == "live":
            return VENICE_API_URL
        return f"http://{self.sandbox_host}:{self.sandbox_port}/api/v1"

    @property
    def sandbox_url(self) -> str:
        """The in-process Venice sandbox's root (``cheaptokens serve`` offline)."""
        return f"http://{self.sandbox_host}:{self.sandbox_port}"

    @property
    def facilitator_url(self) -> str:
        """The x402 facilitator: the setting, or the Venice sandbox's offline."""
        if self.x402_facilitator_url:
            return self.x402_facilitator_url
        if self.venice_base_url.endswith("/api/v1"):
            return self.venice_base_url.removesuffix("/api/v1") + "/x402"
        return f"{self.sandbox_url}/x402"

    @property
    def refund_key(self) -> str | None:
        """The x402 refund wallet's private key: the setting, or the sandbox's offline; None
        in live mode without one (x402 refunds are then the operator's). Never log it."""
        key = self.x402_refund_key.get_secret_value()
        if key:
            return key
        return SANDBOX_X402_REFUND_KEY if self.venice_mode == "sandbox" else None

    def account_keys(self) -> dict[str, str]:
        """Account name -> ADMIN key. Never log the values."""
        raw = self.venice_admin_keys.get_secret_value().strip()
        if not raw:
            return {"sandbox-1": SANDBOX_ADMIN_KEY} if self.venice_mode == "sandbox" else {}
        pairs: dict[str, str] = {}
        for i, item in enumerate(p.strip() for p in raw.split(",") if p.strip()):
            name, sep, key = item.partition("=")
            pairs[name.strip() if sep else f"account-{i + 1}"] = key.strip() if sep else name
        return pairs

    def live_problems(self) -> list[str]:
        """Why these settings must not run against live Venice (empty when they may).

        Real keys must only be handed out for real money, sealed with a key the operator
        keeps: ``cheaptokens serve`` and ``cheaptokens worker`` refuse to start in live mode
        while any of these holds (docs/operations.md, "Refused in live mode").
        """
        if self.venice_mode != "live":
            return []
        problems = []
        if self.payments == "sandbox":
            problems.append(
                "CHEAPTOKENS_PAYMENTS is 'sandbox' (a Pay button anyone can press) while "
                "CHEAPTOKENS_VENICE_MODE is 'live': set CHEAPTOKENS_PAYMENTS=stripe"
            )
        stripe_key = self.stripe_secret_key.get_secret_value()
        if self.payments == "stripe" and not stripe_key.startswith(("sk_live_", "rk_live_")):
            problems.append(
                "CHEAPTOKENS_STRIPE_SECRET_KEY is not a live-mode key (sk_live_… or rk_live_…): "
                "test-mode payments would buy real keys"
            )
        if self.payments == "stripe" and not self.stripe_webhook_secret.get_secret_value():
            problems.append("CHEAPTOKENS_STRIPE_WEBHOOK_SECRET is empty")
        if self.stripe_api_base:
            problems.append(
                "CHEAPTOKENS_STRIPE_API_BASE points the Stripe SDK away from Stripe (a test "
                "server): unset it"
            )
        if self.venice_base_url and self.venice_base_url != VENICE_API_URL:
            problems.append(
                f"CHEAPTOKENS_VENICE_BASE_URL is {self.venice_base_url!r}, not Venice "
                f"({VENICE_API_URL}): a sandbox must not back live sales; unset it"
            )
        keys = self.venice_admin_keys.get_secret_value()
        if not keys.strip() or SANDBOX_ADMIN_KEY in keys:
            problems.append(
                "CHEAPTOKENS_VENICE_ADMIN_KEYS holds no real Venice ADMIN key (name=KEY,…)"
            )
        if self.x402_enabled:
            problems += self._x402_live_problems()
        if not self.data_key.get_secret_value():
            problems.append(
                "CHEAPTOKENS_DATA_KEY is not set: a key generated into the data directory is "
                "lost with it (set a base64 32-byte key you back up)"
            )
        return problems

    def _x402_live_problems(self) -> list[str]:
        """x402 with live Venice: real keys for real USDC, through a real facilitator."""
        problems = []
        host = urlsplit(self.facilitator_url).hostname or ""
        if not self.x402_facilitator_url or host in ("127.0.0.1", "localhost", "::1"):
            problems.append(
                "CHEAPTOKENS_X402_FACILITATOR_URL is not set to a real x402 facilitator (the "
                "Venice sandbox's would hand out real keys for pretend USDC); set it, or "
                "CHEAPTOKENS_X402_ENABLED=false"
            )
        if self.x402_network in TEST_X402_NETWORKS:
            problems.append(
                f"CHEAPTOKENS_X402_NETWORK is {self.x402_network}, a test network: real keys "
                "would be sold for test USDC (use e.g. eip155:8453, Base)"
            )
        if self.x402_asset.lower() == SANDBOX_X402_USDC.lower():
            problems.append("CHEAPTOKENS_X402_ASSET is the sandbox's pretend USDC contract")
        if self.x402_pay_to.lower() == SANDBOX_X402_PAY_TO.lower():
            problems.append(
                "CHEAPTOKENS_X402_PAY_TO is the sandbox's made-up address: set the operator's"
            )
        key = self.x402_refund_key.get_secret_value().lower().removeprefix("0x")
        if key and key == SANDBOX_X402_REFUND_KEY.removeprefix("0x"):
            problems.append(
                "CHEAPTOKENS_X402_REFUND_KEY is the sandbox's refund wallet (its key is public): "
                "set your refund wallet's key, or unset it to pay x402 refunds by hand"
            )
        return problems
