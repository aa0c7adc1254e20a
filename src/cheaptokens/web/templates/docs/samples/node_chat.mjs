import OpenAI from "openai";

const client = new OpenAI({
  apiKey: "__API_KEY__",
  baseURL: "__BASE_URL__",
});

const reply = await client.chat.completions.create({
  model: "llama-3.3-70b",
  messages: [{ role: "user", content: "Say hello in five words." }],
});
console.log(reply.choices[0].message.content);
