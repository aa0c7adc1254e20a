const shop = "__SHOP_URL__", orderId = "__ORDER_ID__", token = "__ORDER_TOKEN__";
const auth = { Authorization: `Bearer ${token}` };

// The old key stops working at once; the new one holds what the old one had not spent.
const r = await fetch(`${shop}/api/orders/${orderId}/reissue`, { method: "POST", headers: auth });
if (!r.ok) throw new Error(`reissue refused: ${r.status} ${await r.text()}`);
let order;
do {
  await new Promise((done) => setTimeout(done, 1000));
  order = await (await fetch(`${shop}/api/orders/${orderId}`, { headers: auth })).json();
} while (order.status === "replacing");
console.log("new key:", order.key.api_key);
console.log("credit on it:", order.key.credit_cents, "cents; why:", order.replacement.reason);
