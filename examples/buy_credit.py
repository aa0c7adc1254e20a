"""Buy $5 of Venice credit from a CheapTokens shop and use it, as a new buyer would.

    python examples/buy_credit.py [--shop http://127.0.0.1:8000] [--credit-cents 500]

On the offline default the checkout is the sandbox page, which this script "pays" with a
JSON POST; against a shop with Stripe it prints the checkout URL and waits for you.
Prints one JSON line with the outcome (never the key itself).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import httpx
import openai


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shop", default="http://127.0.0.1:8000", help="the shop's URL")
    parser.add_argument("--credit-cents", type=int, default=500, help="credit to buy (500 = $5)")
    parser.add_argument("--model", default="llama-3.3-70b", help="Venice model to chat with")
    args = parser.parse_args()

    with httpx.Client(base_url=args.shop, timeout=30) as shop:
        pricing = shop.get("/api/pricing").raise_for_status().json()
        print(
            f"price per $1: {pricing['price_cents_per_dollar']}¢ "
            f"({pricing['discount_percent']}% off), keys expire {pricing['key_expires_at']}",
            file=sys.stderr,
        )
        quote = shop.post("/api/quotes", json={"credit_cents": args.credit_cents})
        quote.raise_for_status()
        q = quote.json()
        order = shop.post("/api/orders", json={"quote_id": q["quote_id"]}).raise_for_status().json()
        auth = {"Authorization": f"Bearer {order['order_token']}"}
        if "/checkout/sandbox/" in (order["checkout_url"] or ""):
            shop.post(order["checkout_url"], json={"outcome": "paid"}).raise_for_status()
        else:
            print(f"pay here: {order['checkout_url']}", file=sys.stderr)
        deadline = time.monotonic() + 120
        while True:
            status = shop.get(f"/api/orders/{order['order_id']}", headers=auth)
            body = status.raise_for_status().json()
            if body["status"] in ("fulfilled", "refunded", "failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                print("timed out waiting for the key", file=sys.stderr)
                return 1
            time.sleep(0.25)
        if body["status"] != "fulfilled":
            print(json.dumps({"status": body["status"], "message": body["message"]}))
            return 1
        key = body["key"]
        client = openai.OpenAI(api_key=key["api_key"], base_url=key["base_url"])
        chat = client.chat.completions.create(
            model=args.model, messages=[{"role": "user", "content": "Say hello in five words."}]
        )
        print(chat.choices[0].message.content, file=sys.stderr)
        supply = shop.get("/api/supply").raise_for_status().json()
        print(
            json.dumps(
                {
                    "status": body["status"],
                    "order_id": order["order_id"],
                    "price_cents": order["price_cents"],
                    "credit_cents": order["credit_cents"],
                    "base_url": key["base_url"],
                    "key_last6": key["last6"],
                    "expires_at": key["expires_at"],
                    "completion_tokens": chat.usage.completion_tokens if chat.usage else None,
                    "remaining_cents": supply["remaining_cents"],
                    "remaining_before_cents": pricing["remaining_cents"],
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
