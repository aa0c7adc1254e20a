"""x402 refunds: USDC back to the paying wallet, signed by the operator's refund wallet.

A facilitator cannot reverse a settlement, so a refund is a new payment the other way: an
EIP-3009 ``transferWithAuthorization`` from the refund wallet to the buyer's wallet, signed
with the refund wallet's eth-account key by the x402 SDK's own client scheme (the code agents
pay with: ``ExactEvmScheme`` over ``EthAccountSigner``), checked (``/verify``) and moved
(``/settle``) by the shop's facilitator, which settles any valid authorization.

**At most once.** The authorization's nonce is derived from the refund's id (the payment it
returns), so every attempt of one refund signs the same nonce; the token contract takes a
nonce from one authorizer once. Its validity window is derived from the clock in steps of the
terms' ``authorization_seconds``, so attempts within a step send byte-for-byte the same
authorization (eth-account signs deterministically). A settle answer lost on the way, a crash
before the refund was recorded: the next attempt signs the same nonce, and the facilitator
answers that it is used — the refund was paid (only this refund ever signs that nonce).

Errors: :class:`RefundWalletUnderfunded` (the refund wallet holds too little USDC: fund it,
the refund is retried), :class:`~cheaptokens.payments.errors.PaymentProviderUnavailable` (the
facilitator was not reached or its answer was lost: retry), :class:`RefundFailed` (the
facilitator refuses the authorization for another reason, e.g. a wrong asset domain: the
operator must look).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from eth_account import Account
from eth_utils.crypto import keccak
from x402.mechanisms.evm.constants import ERR_INSUFFICIENT_BALANCE, ERR_NONCE_ALREADY_USED
from x402.mechanisms.evm.exact import ExactEvmScheme
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.mechanisms.evm.types import ExactEIP3009Authorization, ExactEIP3009Payload
from x402.schemas import PaymentPayload, PaymentRequirements

from cheaptokens.money import format_usd
from cheaptokens.payments.errors import PaymentProviderUnavailable, RefundFailed
from cheaptokens.payments.x402 import (
    PROVIDER,
    SCHEME,
    X402_VERSION,
    X402Gateway,
    cents_to_units,
    checksum_address,
)

#: settle reasons after which the money may be on its way: ask again later
_MAYBE_MOVING: Final = frozenset(
    {
        "settlement_pending",
        "transaction_failed",
        "invalid_exact_evm_transaction_simulation_failed",
        "invalid_exact_evm_transfer_event_mismatch",
    }
)


class RefundWalletUnderfunded(PaymentProviderUnavailable):
    """The refund wallet holds less USDC than the refund: nothing moved; fund it, retry."""


@dataclass(frozen=True, slots=True)
class X402Refund:
    #: the settlement's transaction hash; None when an earlier attempt paid it (lost answer)
    transaction: str | None
    #: the authorization's nonce (its identity on chain, with the refund wallet's address)
    nonce: str
    #: what the order records as its refund reference
    reference: str


class X402Refunder:
    """Pays x402 refunds from the refund wallet (one per process; thread-safe)."""

    def __init__(
        self, gateway: X402Gateway, key: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.gateway = gateway
        account = Account.from_key(key)
        self.address: str = account.address
        # The SDK's client scheme, exactly as an agent pays with it.
        self._scheme = ExactEvmScheme(EthAccountSigner(account))
        self._clock = clock

    def __repr__(self) -> str:  # never the key
        return f"X402Refunder(wallet={self.address!r})"

    def requirements(self, *, to: str, amount_cents: int) -> PaymentRequirements:
        """The refund as x402 requirements: ``amount_cents`` of the shop's USDC to ``to``."""
        t = self.gateway.terms
        return PaymentRequirements(
            scheme=SCHEME,
            network=t.network,
            asset=t.asset,
            amount=str(cents_to_units(amount_cents)),
            pay_to=to,
            max_timeout_seconds=t.authorization_seconds,
            extra={"name": t.asset_name, "version": t.asset_version},
        )

    def nonce(self, refund_id: str) -> str:
        """The EIP-3009 nonce of the refund ``refund_id``: the same for every attempt."""
        t = self.gateway.terms
        seed = f"cheaptokens:x402-refund:{t.network}:{t.asset.lower()}:{refund_id}"
        return "0x" + keccak(text=seed).hex()

    def authorization(self, requirement: PaymentRequirements, refund_id: str) -> PaymentPayload:
        """The signed refund. The SDK's client scheme draws a random nonce in
        ``create_payment_payload``; a refund needs its own, so the authorization is built
        here and signed by the scheme's own EIP-712 signer."""
        step = self.gateway.terms.authorization_seconds
        valid_before = (int(self._clock()) // step + 2) * step  # at least ``step`` from now
        authorization = ExactEIP3009Authorization(
            from_address=self.address,
            to=requirement.pay_to,
            value=requirement.amount,
            valid_after="0",
            valid_before=str(valid_before),
            nonce=self.nonce(refund_id),
        )
        signature = self._scheme._sign_authorization(authorization, requirement)
        inner = ExactEIP3009Payload(authorization=authorization, signature=signature)
        return PaymentPayload(
            x402_version=X402_VERSION, payload=inner.to_dict(), accepted=requirement
        )

    def refund(self, *, to: str, amount_cents: int, refund_id: str) -> X402Refund:
        """Pay ``amount_cents`` back to the wallet ``to`` (idempotent by ``refund_id``)."""
        wallet = checksum_address(to)
        if wallet is None or amount_cents <= 0:
            raise RefundFailed(f"no x402 refund of {amount_cents} cents to {to!r}")
        requirement = self.requirements(to=wallet, amount_cents=amount_cents)
        payload = self.authorization(requirement, refund_id)
        nonce = self.nonce(refund_id)
        verdict = self.gateway.verify(payload, requirement)
        if not verdict.valid:
            return self._not_moved(verdict.reason, nonce, wallet, amount_cents, settling=False)
        result = self.gateway.settle(payload, requirement)
        if result.success:
            tx = result.transaction
            return X402Refund(tx, nonce, tx or self._reference(nonce))
        return self._not_moved(result.reason, nonce, wallet, amount_cents, settling=True)

    def _reference(self, nonce: str) -> str:
        return f"{self.address}/{nonce}"

    def _not_moved(
        self, reason: str | None, nonce: str, wallet: str, cents: int, *, settling: bool
    ) -> X402Refund:
        if reason == ERR_NONCE_ALREADY_USED:  # an earlier attempt of this very refund paid it
            return X402Refund(None, nonce, self._reference(nonce))
        what = f"x402 refund of {format_usd(cents)} USDC to {wallet}"
        if reason == ERR_INSUFFICIENT_BALANCE:
            raise RefundWalletUnderfunded(
                f"{what} waits: the refund wallet {self.address} holds less USDC than that; "
                "fund it and the refund is retried",
                provider=PROVIDER,
                code=reason,
            )
        if settling and (reason in _MAYBE_MOVING or not reason):
            raise PaymentProviderUnavailable(
                f"{what}: the facilitator did not settle it ({reason}); asking again",
                provider=PROVIDER,
                code=reason,
            )
        raise RefundFailed(
            f"{what} was refused by the facilitator ({reason}): pay it by hand from the "
            f"refund wallet {self.address}",
            provider=PROVIDER,
            code=reason,
        )
