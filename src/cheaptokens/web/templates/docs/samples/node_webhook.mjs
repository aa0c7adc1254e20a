// Receive CheapTokens alerts in Node with no dependency: check the Standard Webhooks signature.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

// The webhook_secret your order showed once (whsec_…): base64 after the prefix.
const key = Buffer.from(process.env.CHEAPTOKENS_WEBHOOK_SECRET.replace(/^whsec_/, ""), "base64");
const seen = new Set(); // webhook-id of the events handled already

function verify(body, headers) {
  const id = headers["webhook-id"], timestamp = headers["webhook-timestamp"];
  // Older (or newer) than 5 minutes: refused, so a captured delivery cannot be replayed.
  if (!id || !(Math.abs(Date.now() / 1000 - Number(timestamp)) <= 300)) return null;
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest();
  const valid = (headers["webhook-signature"] || "").split(" ").some((versioned) => {
    const [version, signature] = versioned.split(",");
    const given = Buffer.from(signature || "", "base64");
    return version === "v1" && given.length === expected.length && timingSafeEqual(given, expected);
  });
  return valid ? JSON.parse(body) : null;
}

createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const event = verify(Buffer.concat(chunks).toString("utf8"), req.headers);
    res.writeHead(event ? 204 : 400).end(); // answer at once; do slow work elsewhere
    if (!event || seen.has(req.headers["webhook-id"])) return;
    seen.add(req.headers["webhook-id"]);
    console.log(event.type, event.data.order_id);
  });
}).listen(Number(process.env.PORT || 8080), "127.0.0.1"); // behind your HTTPS proxy
