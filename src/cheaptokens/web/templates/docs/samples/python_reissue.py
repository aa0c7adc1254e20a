import time

import httpx

shop, order_id, token = "__SHOP_URL__", "__ORDER_ID__", "__ORDER_TOKEN__"
auth = {"Authorization": f"Bearer {token}"}

# The old key stops working at once; the new one holds what the old one had not spent.
r = httpx.post(f"{shop}/api/orders/{order_id}/reissue", headers=auth)
r.raise_for_status()
while (order := httpx.get(f"{shop}/api/orders/{order_id}", headers=auth).json())[
    "status"
] == "replacing":
    time.sleep(1)
print("new key:", order["key"]["api_key"])
print("credit on it:", order["key"]["credit_cents"], "cents; why:", order["replacement"]["reason"])
