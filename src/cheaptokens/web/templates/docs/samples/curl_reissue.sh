# the old key stops working at once; poll the order until "status" is "fulfilled" again
curl -sS -X POST "__SHOP_URL__/api/orders/__ORDER_ID__/reissue" \
  -H "Authorization: Bearer __ORDER_TOKEN__"
curl -sS "__SHOP_URL__/api/orders/__ORDER_ID__" -H "Authorization: Bearer __ORDER_TOKEN__"
