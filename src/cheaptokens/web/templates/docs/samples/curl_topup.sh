# 1. $3 more on the same key; open checkout_url to pay
curl -sS -X POST "__SHOP_URL__/api/orders/__ORDER_ID__/topups" \
  -H "Authorization: Bearer __ORDER_TOKEN__" -H "Content-Type: application/json" \
  -H "Idempotency-Key: $(python3 -c 'import uuid; print(uuid.uuid4())')" \
  -d '{"credit_cents": 300}'
# 2. then: topups[].status is "applied" and key.credit_cents has grown
curl -sS "__SHOP_URL__/api/orders/__ORDER_ID__" -H "Authorization: Bearer __ORDER_TOKEN__"
