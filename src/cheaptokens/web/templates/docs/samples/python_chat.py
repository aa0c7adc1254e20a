from openai import OpenAI

client = OpenAI(
    api_key="__API_KEY__",
    base_url="__BASE_URL__",
)

reply = client.chat.completions.create(
    model="llama-3.3-70b",
    messages=[{"role": "user", "content": "Say hello in five words."}],
)
print(reply.choices[0].message.content)
if reply.usage:
    print("tokens used:", reply.usage.total_tokens)
