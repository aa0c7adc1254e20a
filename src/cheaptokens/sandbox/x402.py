"""An x402 facilitator for the offline shop: the SDK's own facilitator over a pretend chain.

``/x402/supported``, ``/x402/verify`` and ``/x402/settle`` are the facilitator HTTP API the
SDK's ``HTTPFacilitatorClient`` calls. Behind them runs the SDK's ``x402FacilitatorSync`` with
its EVM ``exact`` facilitator scheme — every check a real facilitator makes (scheme, network,
recipient, exact amount, validity window, EIP-712 signature, simulation, transfer event) is the
SDK's. What it talks to instead of an RPC node is :class:`ChainSigner`, a
``FacilitatorEvmSigner`` over :class:`UsdcLedger`: an in-memory USDC contract with balances
and EIP-3009 authorization states (a used nonce is refused, ``validAfter``/``validBefore`` are
honoured against the clock, the balance is checked, the signature must recover to ``from``),
reverting with FiatToken's messages so the SDK maps them to its own reasons.

The pretend chain's clock is the real UTC time, as a real chain's is (the SDK checks
``validBefore`` against ``time.time()`` too), not the sandbox's settable Venice clock.
Balances and used nonces are kept in the sandbox's state file. Faults (``/_sandbox/faults``
with a ``path`` under ``/x402/``) make verify or settle fail, time out or lose their answer.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from x402 import x402FacilitatorSync
from x402.mechanisms.evm.eip712 import hash_eip3009_authorization
from x402.mechanisms.evm.exact import ExactEvmFacilitatorScheme
from x402.mechanisms.evm.types import (
    ExactEIP3009Authorization,
    TransactionReceipt,
    TypedDataDomain,
    TypedDataField,
)
from x402.schemas import PaymentPayload, PaymentRequirements

from cheaptokens.config import (
    SANDBOX_X402_FACILITATOR,
    SANDBOX_X402_NETWORK,
    SANDBOX_X402_REFUND_KEY,
    SANDBOX_X402_USDC,
    SANDBOX_X402_USDC_NAME,
    SANDBOX_X402_USDC_VERSION,
)

from .render import json_response

PREFIX = "/x402"
#: the sandbox's refund wallet (the shop's default offline) and what it holds at start
REFUND_WALLET = Account.from_key(SANDBOX_X402_REFUND_KEY).address
REFUND_WALLET_USDC = "1000000.00"
UNITS = Decimal(10) ** 6
#: keccak256("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()


class Reverted(RuntimeError):
    """A contract call reverted (the message says ``execution reverted: …``, as an RPC does)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"execution reverted: {reason}")


def usdc_units(text: object) -> int:
    """``"25.00"`` → 25,000,000 units; more than 6 decimals or a negative amount is refused."""
    try:
        amount = Decimal(str(text))
    except InvalidOperation:
        raise ValueError('usdc must be a decimal number like "25.00"') from None
    units = amount * UNITS
    if not amount.is_finite() or amount < 0 or units != units.to_integral_value():
        raise ValueError("usdc must be a non-negative amount with at most 6 decimals")
    return int(units)


def usdc_text(units: int) -> str:
    return format((Decimal(units) / UNITS).quantize(Decimal("0.000001")), "f")


@dataclass
class UsdcLedger:
    """The USDC contract of the pretend chain (call every method with :attr:`lock` held)."""

    chain_id: int
    token: str
    name: str
    version: str
    now: Callable[[], float] = time.time
    balances: dict[str, int] = field(default_factory=dict)
    #: EIP-3009 authorization states: "authorizer|nonce" (lower case) of every used nonce
    used: set[str] = field(default_factory=set)
    receipts: dict[str, TransactionReceipt] = field(default_factory=dict)
    block: int = 0
    version_no: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)

    def balance(self, address: str) -> int:
        return self.balances.get(address.lower(), 0)

    def set_balance(self, address: str, units: int) -> None:
        self.balances[address.lower()] = units
        self.version_no += 1

    def transfer_with_authorization(self, args: tuple[Any, ...], *, apply: bool) -> str:
        """``transferWithAuthorization(from, to, value, validAfter, validBefore, nonce, v, r, s)``
        (or ``…, nonce, signature``): check it as FiatTokenV2 does, and move the money if
        ``apply``. Returns the transaction hash."""
        sender, to, value, valid_after, valid_before, nonce = args[:6]
        signature = _signature(args[6:])
        now = int(self.now())
        if now <= int(valid_after):
            raise Reverted("FiatTokenV2: authorization is not yet valid")
        if now >= int(valid_before):
            raise Reverted("FiatTokenV2: authorization is expired")
        state = f"{str(sender).lower()}|{bytes(nonce).hex()}"
        if state in self.used:
            raise Reverted("FiatTokenV2: authorization is used or canceled")
        digest = hash_eip3009_authorization(
            ExactEIP3009Authorization(
                from_address=str(sender),
                to=str(to),
                value=str(int(value)),
                valid_after=str(int(valid_after)),
                valid_before=str(int(valid_before)),
                nonce="0x" + bytes(nonce).hex(),
            ),
            self.chain_id,
            self.token,
            self.name,
            self.version,
        )
        try:
            signer = Account._recover_hash(digest, signature=signature)
        except Exception:
            raise Reverted("FiatTokenV2: invalid signature") from None
        if signer.lower() != str(sender).lower():
            raise Reverted("FiatTokenV2: invalid signature")
        if self.balance(str(sender)) < int(value):
            raise Reverted("ERC20: transfer amount exceeds balance")
        tx = "0x" + keccak(text=f"{self.chain_id}|{state}").hex()
        if apply:
            self.used.add(state)
            self.balances[str(sender).lower()] = self.balance(str(sender)) - int(value)
            self.balances[str(to).lower()] = self.balance(str(to)) + int(value)
            self.block += 1
            self.version_no += 1
            self.receipts[tx] = TransactionReceipt(
                status=1,
                block_number=self.block,
                tx_hash=tx,
                logs=[
                    {
                        "address": self.token,
                        "topics": [TRANSFER_TOPIC, _topic(str(sender)), _topic(str(to))],
                        "data": "0x" + int(value).to_bytes(32, "big").hex(),
                    }
                ],
            )
        return tx

    def dump(self) -> dict[str, Any]:
        return {
            "balances": {a: str(u) for a, u in sorted(self.balances.items())},
            "used": sorted(self.used),
            "block": self.block,
        }

    def restore(self, raw: dict[str, Any]) -> None:
        self.balances = {str(a): int(u) for a, u in raw.get("balances", {}).items()}
        self.used = {str(s) for s in raw.get("used", [])}
        self.block = int(raw.get("block", 0))


def _topic(address: str) -> str:
    return "0x" + bytes.fromhex(address.lower().removeprefix("0x")).rjust(32, b"\0").hex()


def _signature(parts: tuple[Any, ...]) -> bytes:
    if len(parts) == 3:  # v, r, s
        v, r, s = parts
        return bytes(r) + bytes(s) + bytes([int(v)])
    return bytes(parts[0])


class ChainSigner:
    """The SDK's ``FacilitatorEvmSigner`` over :class:`UsdcLedger`: what a facilitator asks of
    a chain (read and write the token contract, code, receipts), answered from memory."""

    def __init__(self, ledger: UsdcLedger, address: str = SANDBOX_X402_FACILITATOR) -> None:
        self.ledger = ledger
        self.address = to_checksum_address(address)

    def get_addresses(self) -> list[str]:
        return [self.address]

    def _token(self, address: str) -> None:
        if address.lower() != self.ledger.token.lower():
            raise Reverted("no contract at this address")

    def read_contract(
        self, address: str, abi: list[dict[str, Any]], function_name: str, *args: Any
    ) -> Any:
        self._token(address)
        with self.ledger.lock:
            if function_name == "balanceOf":
                return self.ledger.balance(str(args[0]))
            if function_name == "name":
                return self.ledger.name
            if function_name == "version":
                return self.ledger.version
            if function_name == "authorizationState":
                return f"{str(args[0]).lower()}|{bytes(args[1]).hex()}" in self.ledger.used
            if function_name == "allowance":
                return 0
            if function_name == "transferWithAuthorization":  # an eth_call: simulate
                self.ledger.transfer_with_authorization(args, apply=False)
                return None
        raise Reverted(f"{function_name} is not emulated")

    def verify_typed_data(
        self,
        address: str,
        domain: TypedDataDomain,
        types: dict[str, list[TypedDataField]],
        primary_type: str,
        message: dict[str, Any],
        signature: bytes,
    ) -> bool:
        return False  # only EIP-3009 (verified by the SDK itself and the contract) is emulated

    def write_contract(
        self,
        address: str,
        abi: list[dict[str, Any]],
        function_name: str,
        *args: Any,
        data_suffix: str | None = None,
    ) -> str:
        self._token(address)
        if function_name != "transferWithAuthorization":
            raise Reverted(f"{function_name} is not emulated")
        with self.ledger.lock:
            return self.ledger.transfer_with_authorization(args, apply=True)

    def send_transaction(self, to: str, data: bytes) -> str:
        raise Reverted("raw transactions (smart-wallet deployment) are not emulated")

    def wait_for_transaction_receipt(self, tx_hash: str) -> TransactionReceipt:
        with self.ledger.lock:
            receipt = self.ledger.receipts.get(tx_hash)
        if receipt is None:
            raise RuntimeError(f"unknown transaction {tx_hash}")
        return receipt

    def get_balance(self, address: str, token_address: str) -> int:
        self._token(token_address)
        with self.ledger.lock:
            return self.ledger.balance(address)

    def get_chain_id(self) -> int:
        return self.ledger.chain_id

    def get_code(self, address: str) -> bytes:
        # The token is a contract; every wallet is a plain account (EOA).
        return b"\x60\x80" if address.lower() == self.ledger.token.lower() else b""


class SandboxFacilitator:
    """The facilitator's routes and its ledger."""

    def __init__(
        self,
        *,
        network: str = SANDBOX_X402_NETWORK,
        token: str = SANDBOX_X402_USDC,
        name: str = SANDBOX_X402_USDC_NAME,
        version: str = SANDBOX_X402_USDC_VERSION,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.network = network
        self.ledger = UsdcLedger(
            chain_id=int(network.split(":", 1)[1]),
            token=to_checksum_address(token),
            name=name,
            version=version,
        )
        self.fund_refund_wallet()
        self.facilitator = x402FacilitatorSync()
        self.facilitator.register([network], ExactEvmFacilitatorScheme(ChainSigner(self.ledger)))
        self.on_change = on_change

    def routes(self) -> list[Route]:
        return [
            Route(f"{PREFIX}/supported", self._supported, methods=["GET"]),
            Route(f"{PREFIX}/verify", self._verify, methods=["POST"]),
            Route(f"{PREFIX}/settle", self._settle, methods=["POST"]),
        ]

    async def _supported(self, request: Request) -> Response:
        supported = self.facilitator.get_supported()
        return json_response(supported.model_dump(by_alias=True, exclude_none=True))

    @staticmethod
    async def _parsed(request: Request) -> tuple[PaymentPayload, PaymentRequirements] | Response:
        try:
            body = json.loads(await request.body())
            payload = PaymentPayload.model_validate(body["paymentPayload"])
            requirements = PaymentRequirements.model_validate(body["paymentRequirements"])
        except Exception:
            return json_response({"error": "expected paymentPayload and paymentRequirements"}, 400)
        return payload, requirements

    async def _verify(self, request: Request) -> Response:
        parsed = await self._parsed(request)
        if isinstance(parsed, Response):
            return parsed
        result = self.facilitator.verify(*parsed)
        return json_response(result.model_dump(by_alias=True, exclude_none=True))

    async def _settle(self, request: Request) -> Response:
        parsed = await self._parsed(request)
        if isinstance(parsed, Response):
            return parsed
        result = self.facilitator.settle(*parsed)
        self.on_change()
        return json_response(result.model_dump(by_alias=True, exclude_none=True))

    # ------------------------------------------------------------------ control
    def fund_refund_wallet(self) -> None:
        """Give the sandbox's refund wallet its pretend USDC, unless its balance is on record
        (a restored state keeps what it holds, an emptied wallet stays empty)."""
        with self.ledger.lock:
            if REFUND_WALLET.lower() not in self.ledger.balances:
                self.ledger.set_balance(REFUND_WALLET, usdc_units(REFUND_WALLET_USDC))

    def fund(self, address: str, usdc: object) -> dict[str, str]:
        wallet = to_checksum_address(address)
        with self.ledger.lock:
            self.ledger.set_balance(wallet, usdc_units(usdc))
        self.on_change()
        return self.wallet(wallet)

    def wallet(self, address: str) -> dict[str, str]:
        wallet = to_checksum_address(address)
        with self.ledger.lock:
            return {"address": wallet, "usdc": usdc_text(self.ledger.balance(wallet))}

    def fingerprint(self) -> str:
        with self.ledger.lock:
            return hashlib.sha256(json.dumps(self.ledger.dump()).encode()).hexdigest()
