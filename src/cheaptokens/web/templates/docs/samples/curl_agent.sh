# 1. today's price and supply
curl -sS "__SHOP_URL__/api/pricing"
curl -sS "__SHOP_URL__/api/supply"
# 2. lock a price for $5 of credit for 60 seconds
QUOTE=$(curl -sS -X POST "__SHOP_URL__/api/quotes" \
  -H "Content-Type: application/json" -d '{"credit_cents": 500}')
QUOTE_ID=$(printf '%s' "$QUOTE" | python3 -c 'import json,sys; print(json.load(sys.stdin)["quote_id"])')
# 3. order it; keep order_token secret, open checkout_url to pay
curl -sS -X POST "__SHOP_URL__/api/orders" \
  -H "Content-Type: application/json" \
  -H "Idempotency-Key: $(python3 -c 'import uuid; print(uuid.uuid4())')" \
  -d "{\"quote_id\": \"$QUOTE_ID\"}"
