# buy $5 of credit with alerts: events go to webhook_url, signed with webhook_secret (shown once)
curl -sS -X POST "__SHOP_URL__/api/orders" \
  -H "Content-Type: application/json" \
  -H "Idempotency-Key: $(python3 -c 'import uuid; print(uuid.uuid4())')" \
  -d '{"credit_cents": 500, "webhook_url": "__WEBHOOK_URL__"}'
# the delivery log: every event, each try, your receiver's answers
curl -sS "__SHOP_URL__/api/orders/__ORDER_ID__/deliveries" -H "Authorization: Bearer __ORDER_TOKEN__"
# a new URL (or a lost secret): a new webhook_secret, and the old one stops working
curl -sS -X PUT "__SHOP_URL__/api/orders/__ORDER_ID__/webhook" \
  -H "Authorization: Bearer __ORDER_TOKEN__" -H "Content-Type: application/json" \
  -d '{"url": "__WEBHOOK_URL__"}'
