"""Agents that pay with x402: a throw-away eth-account wallet and the SDK's own httpx client.

Every wallet here is made on the spot (``Account.create()``) and funded on the Venice sandbox's
pretend chain; none holds anything anywhere else.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from x402 import x402Client
from x402.extensions.sign_in_with_x import (
    CreateSIWxClientExtensionOptions,
    create_siwx_client_extension,
)
from x402.http.clients import x402_httpx_transport
from x402.mechanisms.evm.eip712 import build_typed_data_for_signing
from x402.mechanisms.evm.exact.register import register_exact_evm_client
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.mechanisms.evm.types import ExactEIP3009Authorization, TypedDataField
from x402.schemas import PaymentPayload, PaymentRequirements

from cheaptokens.config import SANDBOX_X402_NETWORK, SANDBOX_X402_USDC
from cheaptokens.sandbox import Sandbox


def new_wallet() -> LocalAccount:
    """A fresh key that exists only for this test."""
    return Account.create(os.urandom(32))


def fund(sandbox: Sandbox, address: str, usdc: str) -> None:
    sandbox.x402.fund(address, usdc)


def balance(sandbox: Sandbox, address: str) -> Decimal:
    return Decimal(sandbox.x402.wallet(address)["usdc"])


def agent_client(
    wallet: LocalAccount, transport: httpx.AsyncBaseTransport, base_url: str
) -> httpx.AsyncClient:
    """The SDK's httpx client paying (and signing in) with ``wallet``."""
    client = x402Client()
    register_exact_evm_client(client, wallet)
    # The sandbox's USDC is no default asset of the SDK: allow it, up to $50 a payment.
    client.set_spend_controls(
        {
            "allowed_assets": [
                {
                    "network": SANDBOX_X402_NETWORK,
                    "asset": SANDBOX_X402_USDC,
                    "max_amount_per_payment": "50000000",
                }
            ]
        }
    )
    client.register_extension(
        create_siwx_client_extension(CreateSIWxClientExtensionOptions([wallet]))
    )
    return httpx.AsyncClient(
        transport=x402_httpx_transport(client, transport), base_url=base_url, timeout=60
    )


def agent_post(kit: Any, wallet: LocalAccount, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST with the SDK's client (paying with ``wallet``) to the kit's shop, in process."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=kit.web.app)
        async with agent_client(wallet, transport, "http://testserver") as http:
            return await http.post(path, json=body)

    return asyncio.run(go())


def agent_get(kit: Any, wallet: LocalAccount, path: str) -> httpx.Response:
    """GET with the SDK's client (signing in with ``wallet``) from the kit's shop."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=kit.web.app)
        async with agent_client(wallet, transport, "http://testserver") as http:
            return await http.get(path)

    return asyncio.run(go())


def required_of(response: httpx.Response) -> dict[str, Any]:
    """The decoded PAYMENT-REQUIRED header of a 402."""
    return dict(json.loads(base64.b64decode(response.headers["PAYMENT-REQUIRED"])))


def sign(
    wallet: LocalAccount,
    requirement: dict[str, Any],
    *,
    value: int | None = None,
    to: str | None = None,
    valid_after: int = 0,
    valid_before: int | None = None,
    nonce: str | None = None,
    accepted: dict[str, Any] | None = None,
    chain_id: int | None = None,
) -> str:
    """A PAYMENT-SIGNATURE header for ``requirement`` built by hand from the SDK's types, so a
    test can change one thing (the amount, payTo, validity, nonce, the chain) and attack."""
    req = PaymentRequirements.model_validate(requirement)
    auth = ExactEIP3009Authorization(
        from_address=wallet.address,
        to=to or req.pay_to,
        value=str(value if value is not None else int(req.amount)),
        valid_after=str(valid_after),
        valid_before=str(valid_before or int(time.time()) + req.max_timeout_seconds),
        nonce=nonce or "0x" + secrets.token_hex(32),
    )
    chain = chain_id if chain_id is not None else int(req.network.split(":")[1])
    domain, types, primary, message = build_typed_data_for_signing(
        auth, chain, req.asset, req.extra["name"], req.extra["version"]
    )
    fields = {
        k: [TypedDataField(name=f["name"], type=f["type"]) for f in v] for k, v in types.items()
    }
    signature = EthAccountSigner(wallet).sign_typed_data(domain, fields, primary, message)
    payload = PaymentPayload(
        x402_version=2,
        payload={
            "authorization": {
                "from": auth.from_address,
                "to": auth.to,
                "value": auth.value,
                "validAfter": auth.valid_after,
                "validBefore": auth.valid_before,
                "nonce": auth.nonce,
            },
            "signature": "0x" + signature.hex(),
        },
        accepted=PaymentRequirements.model_validate(accepted or requirement),
    )
    text = payload.model_dump_json(by_alias=True, exclude_none=True)
    return base64.b64encode(text.encode()).decode()


@dataclass
class Paid:
    """A raw paid request's answer, decoded."""

    response: httpx.Response

    @property
    def body(self) -> dict[str, Any]:
        return dict(self.response.json())
