curl -sS "__BASE_URL__/chat/completions" \
  -H "Authorization: Bearer __API_KEY__" \
  -H "Content-Type: application/json" \
  -d '{"model": "llama-3.3-70b",
       "messages": [{"role": "user", "content": "Say hello in five words."}]}'
