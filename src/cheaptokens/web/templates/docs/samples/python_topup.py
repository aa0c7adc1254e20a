import time
import uuid

import httpx

shop, order_id, token = "__SHOP_URL__", "__ORDER_ID__", "__ORDER_TOKEN__"
auth = {"Authorization": f"Bearer {token}"}

# 1. Ask for $3 more on the same key (a new random Idempotency-Key for each top-up).
r = httpx.post(
    f"{shop}/api/orders/{order_id}/topups",
    json={"credit_cents": 300},
    headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
)
r.raise_for_status()
topup = r.json()
print("pay here:", topup["checkout_url"], flush=True)

# 2. Once paid, the key's cap rises: wait until the top-up is applied.
while True:
    order = httpx.get(f"{shop}/api/orders/{order_id}", headers=auth).json()
    mine = next(t for t in order["topups"] if t["topup_id"] == topup["topup_id"])
    if mine["status"] in ("applied", "refunded", "cancelled"):
        break
    time.sleep(2)
print(mine["status"], "- the key now holds", order["key"]["credit_cents"], "cents of credit")
