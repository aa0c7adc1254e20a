curl -sS -N "__BASE_URL__/chat/completions" \
  -H "Authorization: Bearer __API_KEY__" \
  -H "Content-Type: application/json" \
  -d '{"model": "deepseek-v3.2", "stream": true,
       "messages": [{"role": "user", "content": "Count from one to five."}]}'
