import { randomUUID } from "node:crypto";

const shop = "__SHOP_URL__", orderId = "__ORDER_ID__", token = "__ORDER_TOKEN__";
const auth = { Authorization: `Bearer ${token}` };

// 1. Ask for $3 more on the same key (a new random Idempotency-Key for each top-up).
const r = await fetch(`${shop}/api/orders/${orderId}/topups`, {
  method: "POST",
  headers: { ...auth, "Content-Type": "application/json", "Idempotency-Key": randomUUID() },
  body: JSON.stringify({ credit_cents: 300 }),
});
if (!r.ok) throw new Error(`top-up refused: ${r.status} ${await r.text()}`);
const topup = await r.json();
console.log("pay here:", topup.checkout_url);

// 2. Once paid, the key's cap rises: wait until the top-up is applied.
for (;;) {
  const order = await (await fetch(`${shop}/api/orders/${orderId}`, { headers: auth })).json();
  const mine = order.topups.find((t) => t.topup_id === topup.topup_id);
  if (["applied", "refunded", "cancelled"].includes(mine.status)) {
    console.log(mine.status, "- the key now holds", order.key.credit_cents, "cents of credit");
    break;
  }
  await new Promise((done) => setTimeout(done, 2000));
}
