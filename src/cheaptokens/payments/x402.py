"""x402 payments (protocol v2, scheme ``exact`` on an EVM network, paid in USDC).

An agent pays by signing an EIP-3009 ``transferWithAuthorization`` of the exact price to the
operator's address; a *facilitator* checks it (``/verify``) and moves the money (``/settle``).
This module is the shop's side of that, built on the official ``x402`` SDK: its types
(``PaymentRequirements``, ``PaymentRequired``, ``PaymentPayload``, ``SettleResponse``), its
header codecs, its resource server (``x402ResourceServerSync`` with the EVM ``exact`` server
scheme: matching a payload to the requirements, verify, settle with the SDK's retry of a
pending settlement) and its HTTP facilitator client.

Nothing here knows orders: :mod:`cheaptokens.orders.x402` decides, this module talks.

Errors: a facilitator that cannot be reached (or answers nonsense) on ``verify`` raises
:class:`PaymentProviderUnavailable` (nothing happened); on ``settle`` a call that may have
reached it raises :class:`SettlementUnknown` (the money may have moved: ask again with the
same authorization, which can move it at most once), one that provably never left raises
:class:`PaymentProviderUnavailable`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Final

import httpx
from eth_utils.address import is_hex_address, to_checksum_address
from x402 import x402ResourceServerSync
from x402.http import FacilitatorConfig, HTTPFacilitatorClientSync
from x402.http.utils import (
    decode_payment_signature_header,
    encode_payment_required_header,
    encode_payment_response_header,
)
from x402.mechanisms.evm.exact import ExactEvmServerScheme
from x402.schemas import (
    PaymentPayload,
    PaymentRequired,
    PaymentRequirements,
    ResourceInfo,
    SettleResponse,
)

from cheaptokens.payments.errors import PaymentError, PaymentProviderUnavailable

#: USDC has 6 decimals: one cent is 10,000 of its smallest units (exact, no rounding).
USDC_DECIMALS: Final = 6
UNITS_PER_CENT: Final = 10 ** (USDC_DECIMALS - 2)
SCHEME: Final = "exact"
X402_VERSION: Final = 2
PROVIDER: Final = "x402"


def cents_to_units(cents: int) -> int:
    """``83 -> 830000``: cents of a dollar as USDC's smallest units."""
    return cents * UNITS_PER_CENT


def units_to_cents(units: int) -> int:
    """USDC units as whole cents; a fraction of a cent is refused (the shop prices in cents)."""
    cents, rest = divmod(units, UNITS_PER_CENT)
    if rest:
        raise ValueError(f"{units} USDC units is not a whole number of cents")
    return cents


class PaymentRefused(PaymentError):
    """The payment cannot pay for this: ``code`` says why in x402's words (e.g.
    ``invalid_exact_evm_insufficient_balance``) or the shop's (``payment_replayed``)."""


class SettlementUnknown(PaymentProviderUnavailable):
    """A settle call whose answer never came: the money may have moved."""


@dataclass(frozen=True, slots=True)
class X402Terms:
    """Where and how the shop takes x402 payments (from Settings)."""

    network: str  # CAIP-2, e.g. eip155:8453
    asset: str  # the USDC contract
    asset_name: str  # its EIP-712 domain name ("USD Coin", "USDC")
    asset_version: str  # and version ("2")
    pay_to: str  # the operator's address
    facilitator_url: str
    #: how long an authorization may stay valid (the SDK's client signs validBefore = now + this)
    authorization_seconds: int = 300
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class Verdict:
    valid: bool
    reason: str | None
    payer: str | None


@dataclass(frozen=True, slots=True)
class Settlement:
    success: bool
    reason: str | None
    transaction: str | None
    payer: str | None
    #: the ``PAYMENT-RESPONSE`` header of a successful settlement (base64 JSON)
    header: str


def checksum_address(text: object) -> str | None:
    """An EVM address in its checksummed form; None if ``text`` is not one."""
    if not isinstance(text, str) or not is_hex_address(text):
        return None
    return str(to_checksum_address(text))


def authorization_of(payload: PaymentPayload) -> dict[str, Any]:
    """The EIP-3009 authorization inside an ``exact`` EVM payload (``from``, ``to``, ``value``,
    ``validAfter``, ``validBefore``, ``nonce``); raises :class:`PaymentRefused` if absent."""
    auth = payload.payload.get("authorization") if isinstance(payload.payload, dict) else None
    if not isinstance(auth, dict) or not all(
        isinstance(auth.get(k), str) for k in ("from", "to", "value", "validBefore", "nonce")
    ):
        raise PaymentRefused(
            "the payment carries no EIP-3009 authorization", code="invalid_payload"
        )
    return auth


class X402Gateway:
    """The facilitator as the shop sees it (one per process; thread-safe)."""

    name = PROVIDER

    def __init__(self, terms: X402Terms, *, http: httpx.Client | None = None) -> None:
        self.terms = terms
        self._facilitator = HTTPFacilitatorClientSync(
            FacilitatorConfig(url=terms.facilitator_url, timeout=terms.timeout, http_client=http)
        )
        self._server = x402ResourceServerSync(self._facilitator)
        # The SDK's scheme class is untyped and its flow table is typed loosely.
        scheme = ExactEvmServerScheme()  # type: ignore[no-untyped-call]
        self._server.register(terms.network, scheme)  # type: ignore[arg-type]
        self._lock = threading.Lock()
        self._ready = False

    def __repr__(self) -> str:
        return f"X402Gateway(network={self.terms.network!r}, pay_to={self.terms.pay_to!r})"

    # -------------------------------------------------------------------- requirements
    def requirements(
        self, *, amount_cents: int, extra: dict[str, Any], timeout_seconds: int | None = None
    ) -> PaymentRequirements:
        """What a payment of ``amount_cents`` must be. Built from the SDK's type by hand:
        the SDK's ``build_payment_requirements`` needs the facilitator's ``/supported`` first,
        and the shop must be able to quote (answer the first 402) while it is unreachable.
        ``timeout_seconds``: how long the authorization must stay valid (the SDK's client
        signs ``validBefore = now + maxTimeoutSeconds``); default the terms' own."""
        t = self.terms
        return PaymentRequirements(
            scheme=SCHEME,
            network=t.network,
            asset=t.asset,
            amount=str(cents_to_units(amount_cents)),
            pay_to=t.pay_to,
            max_timeout_seconds=timeout_seconds or t.authorization_seconds,
            extra={"name": t.asset_name, "version": t.asset_version, **extra},
        )

    def payment_required(
        self,
        *,
        accepts: list[PaymentRequirements],
        url: str,
        description: str,
        error: str | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> PaymentRequired:
        return PaymentRequired(
            x402_version=X402_VERSION,
            error=error,
            resource=ResourceInfo(url=url, description=description, mime_type="application/json"),
            accepts=accepts,
            extensions=extensions,
        )

    @staticmethod
    def encode_required(required: PaymentRequired) -> str:
        """The ``PAYMENT-REQUIRED`` header."""
        return encode_payment_required_header(required)

    @staticmethod
    def parse(header: str) -> PaymentPayload:
        """The ``PAYMENT-SIGNATURE`` header (x402 v2 only)."""
        try:
            payload = decode_payment_signature_header(header)
        except Exception:  # base64, JSON or schema: all the same to the buyer
            raise PaymentRefused(
                "the PAYMENT-SIGNATURE header is not an x402 payment payload",
                code="invalid_payload",
            ) from None
        if not isinstance(payload, PaymentPayload) or payload.x402_version != X402_VERSION:
            raise PaymentRefused("only x402 version 2 payments are taken", code="invalid_version")
        return payload

    def matches(self, requirements: PaymentRequirements, payload: PaymentPayload) -> bool:
        """Does the payment's ``accepted`` meet ``requirements`` (scheme, network, asset,
        amount, payTo, timeout, extra)? The SDK's own matching."""
        return self._server.find_matching_requirements([requirements], payload) is not None

    # -------------------------------------------------------------------- facilitator
    def _initialize(self) -> None:
        with self._lock:
            if self._ready:
                return
            try:
                self._server.initialize()  # GET /supported
            except Exception as exc:
                raise PaymentProviderUnavailable(
                    f"the x402 facilitator cannot be reached ({type(exc).__name__})",
                    provider=PROVIDER,
                ) from exc
            self._ready = True

    @property
    def ready(self) -> bool:
        """The facilitator's ``/supported`` has been fetched."""
        return self._ready

    def warm(self) -> bool:
        """Fetch the facilitator's ``/supported`` (and open its connection) now, so the first
        paid request does not pay for it; False if the facilitator cannot be reached (the
        first request tries again)."""
        try:
            self._initialize()
        except PaymentProviderUnavailable:
            return False
        return True

    def verify(self, payload: PaymentPayload, requirements: PaymentRequirements) -> Verdict:
        """Ask the facilitator whether the payment would settle (changes nothing)."""
        self._initialize()
        try:
            result = self._server.verify_payment(payload, requirements)
        except Exception as exc:
            raise PaymentProviderUnavailable(
                f"the x402 facilitator did not verify the payment ({type(exc).__name__})",
                provider=PROVIDER,
            ) from exc
        v = result.verify
        return Verdict(v.is_valid, v.invalid_reason, v.payer)

    def settle(self, payload: PaymentPayload, requirements: PaymentRequirements) -> Settlement:
        """Move the money. See the module docstring for the two kinds of failure."""
        self._initialize()
        try:
            result: SettleResponse = self._server.settle_payment(payload, requirements)
        except httpx.ConnectError as exc:  # never reached the facilitator
            raise PaymentProviderUnavailable(
                "the x402 facilitator cannot be reached", provider=PROVIDER
            ) from exc
        except Exception as exc:  # timeout, lost answer, 5xx, unreadable answer
            raise SettlementUnknown(
                f"the x402 facilitator's settlement answer was lost ({type(exc).__name__})",
                provider=PROVIDER,
            ) from exc
        return Settlement(
            success=result.success,
            reason=result.error_reason,
            transaction=result.transaction or None,
            payer=result.payer,
            header=encode_payment_response_header(result) if result.success else "",
        )

    @staticmethod
    def response_header(*, transaction: str, network: str, payer: str, amount_units: int) -> str:
        """A ``PAYMENT-RESPONSE`` header for a settlement recorded earlier."""
        return encode_payment_response_header(
            SettleResponse(
                success=True,
                transaction=transaction,
                network=network,
                payer=payer,
                amount=str(amount_units),
            )
        )

    def close(self) -> None:
        self._facilitator.close()
