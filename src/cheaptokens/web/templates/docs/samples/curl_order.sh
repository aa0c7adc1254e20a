# the order's status and, once paid, its key (shown until you confirm receipt)
curl -sS "__SHOP_URL__/api/orders/__ORDER_ID__" -H "Authorization: Bearer __ORDER_TOKEN__"
# credit used and left on the key
curl -sS "__SHOP_URL__/api/orders/__ORDER_ID__/usage" -H "Authorization: Bearer __ORDER_TOKEN__"
# you saved the key: the shop forgets it (only its last six characters stay)
curl -sS -X POST "__SHOP_URL__/api/orders/__ORDER_ID__/received" \
  -H "Authorization: Bearer __ORDER_TOKEN__"
