import openai
from openai import OpenAI

client = OpenAI(api_key="__API_KEY__", base_url="__BASE_URL__", max_retries=2)

try:
    reply = client.chat.completions.create(
        model="deepseek-v3.2",
        messages=[{"role": "user", "content": "One sentence about midnight."}],
    )
    print(reply.choices[0].message.content)
except openai.AuthenticationError:  # 401: unknown or expired key (expired at 00:00 UTC)
    print("The key is not valid any more: buy a new one for today.")
except openai.APIStatusError as err:
    if err.status_code == 402:  # the key's credit (or the account's) is used up
        print("Out of credit for today:", err.response.json().get("error"))
    elif err.status_code == 403:  # an anonymized model: the key calls private models only
        print("Pick a private model:", err.response.json().get("error"))
    elif err.status_code == 429:  # rate limited: wait, then retry
        print("Slow down; retry after", err.response.headers.get("retry-after", "30"), "s")
    else:
        raise
