// The same receiver with the standardwebhooks library: npm install standardwebhooks
import { createServer } from "node:http";
import { Webhook } from "standardwebhooks";

const webhook = new Webhook(process.env.CHEAPTOKENS_WEBHOOK_SECRET); // whsec_…
const seen = new Set(); // webhook-id of the events handled already

createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    let event;
    try {
      // Checks the signature and that webhook-timestamp is within 5 minutes (replays fail).
      event = webhook.verify(Buffer.concat(chunks).toString("utf8"), req.headers);
    } catch {
      return res.writeHead(400).end();
    }
    res.writeHead(204).end();
    if (seen.has(req.headers["webhook-id"])) return; // a retry of an event handled already
    seen.add(req.headers["webhook-id"]);
    console.log(event.type, event.data.order_id);
  });
}).listen(Number(process.env.PORT || 8080), "127.0.0.1"); // behind your HTTPS proxy
