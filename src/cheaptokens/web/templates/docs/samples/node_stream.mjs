import OpenAI from "openai";

const client = new OpenAI({ apiKey: "__API_KEY__", baseURL: "__BASE_URL__" });

const stream = await client.chat.completions.create({
  model: "deepseek-v3.2",
  messages: [{ role: "user", content: "Count from one to five." }],
  stream: true,
});
for await (const chunk of stream) {
  process.stdout.write(chunk.choices[0]?.delta?.content ?? "");
}
process.stdout.write("\n");
