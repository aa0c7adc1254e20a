"""An agent buys Venice credit on its own with x402 (USDC), then uses the key.

    python examples/agent_buy.py [--shop http://127.0.0.1:8000] [--credit-cents 500]
                                 [--topup-cents 200] [--sandbox http://127.0.0.1:8001]

Against the offline shop (``make run``) it makes a throw-away wallet and funds it with $25 of
the Venice sandbox's pretend USDC (``POST /_sandbox/x402/wallets``). It then does what any
agent does: ``POST /api/buy`` through the x402 SDK's httpx client, which answers the 402 by
signing the USDC authorization and sending it again; the 200 carries the key. It tops the same
key up the same way (``POST /api/orders/{id}/topups`` with the order token: 402, sign, 200),
chats with the key (the ``openai`` SDK), signs in with the wallet to list its purchases, and
prints one JSON line with the outcome (never the key itself).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys

import httpx
import openai
from eth_account import Account
from x402 import x402Client
from x402.extensions.sign_in_with_x import (
    CreateSIWxClientExtensionOptions,
    create_siwx_client_extension,
)
from x402.http.clients import x402_httpx_transport
from x402.mechanisms.evm.exact.register import register_exact_evm_client


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shop", default="http://127.0.0.1:8000", help="the shop's URL")
    parser.add_argument("--sandbox", default="http://127.0.0.1:8001", help="the Venice sandbox")
    parser.add_argument("--credit-cents", type=int, default=500, help="credit to buy (500 = $5)")
    parser.add_argument(
        "--topup-cents", type=int, default=200, help="credit to add to the same key (0: none)"
    )
    parser.add_argument("--model", default="llama-3.3-70b", help="Venice model to chat with")
    args = parser.parse_args()

    wallet = Account.create(os.urandom(32))  # throw-away: it exists for this run only
    with httpx.Client(timeout=30) as plain:
        plain.post(
            f"{args.sandbox}/_sandbox/x402/wallets",
            json={"address": wallet.address, "usdc": "25.00"},
        ).raise_for_status()
        first = plain.post(f"{args.shop}/api/buy", json={"credit_cents": args.credit_cents})
        if first.status_code != 402:
            print(json.dumps({"error": f"expected 402, got {first.status_code}"}))
            return 1
        offer = json.loads(base64.b64decode(first.headers["PAYMENT-REQUIRED"]))["accepts"][0]
    print(f"price: {int(offer['amount']) / 1e6:.2f} USDC on {offer['network']}", file=sys.stderr)

    client = x402Client()
    register_exact_evm_client(client, wallet)
    # The sandbox's USDC is no default asset of the SDK: allow it, up to the offered price.
    client.set_spend_controls(
        {
            "allowed_assets": [
                {
                    "network": offer["network"],
                    "asset": offer["asset"],
                    "max_amount_per_payment": offer["amount"],
                }
            ]
        }
    )
    client.register_extension(
        create_siwx_client_extension(CreateSIWxClientExtensionOptions([wallet]))
    )
    transport = x402_httpx_transport(client)
    async with httpx.AsyncClient(transport=transport, base_url=args.shop, timeout=60) as http:
        bought = await http.post("/api/buy", json={"credit_cents": args.credit_cents})
        if bought.status_code != 200:
            print(json.dumps({"status": bought.status_code, "body": bought.json()}))
            return 1
        order = bought.json()
        topup: dict[str, object] = {}
        if args.topup_cents:  # more credit on the same key, paid the same way
            added = await http.post(
                f"/api/orders/{order['order_id']}/topups",
                json={"credit_cents": args.topup_cents},
                headers={"Authorization": f"Bearer {order['order_token']}"},
            )
            topup = added.json()
            if added.status_code != 200:
                print(json.dumps({"status": added.status_code, "body": topup}))
                return 1
        mine = (await http.get("/api/wallet/orders")).json()
    async with httpx.AsyncClient(timeout=30) as plain_async:
        usdc = (
            await plain_async.get(f"{args.sandbox}/_sandbox/x402/wallets/{wallet.address}")
        ).json()

    key = order["key"]
    chat = openai.OpenAI(api_key=key["api_key"], base_url=key["base_url"]).chat.completions.create(
        model=args.model, messages=[{"role": "user", "content": "Say hello in five words."}]
    )
    print(
        json.dumps(
            {
                "status": order["status"],
                "order_id": order["order_id"],
                "credit_cents": order["credit_cents"],
                "price_cents": order["price_cents"],
                "key_expires_at": key["expires_at"],
                "base_url": key["base_url"],
                "completion_tokens": chat.usage.completion_tokens if chat.usage else 0,
                "wallet_usdc_after": usdc["usdc"],
                "wallet_orders": [o["order_id"] for o in mine["orders"]],
                "settled": "PAYMENT-RESPONSE" in bought.headers,
                "topup_status": topup.get("status"),
                "topup_price_cents": topup.get("price_cents", 0),
                "key_credit_cents": topup.get("key_credit_cents", key["credit_cents"]),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
