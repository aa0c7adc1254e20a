# Receive CheapTokens alerts: check each event's signature (Standard Webhooks), act once per event.
# pip install standardwebhooks
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

# The webhook_secret your order showed once (whsec_…): keep it out of your code.
webhook = Webhook(os.environ["CHEAPTOKENS_WEBHOOK_SECRET"])
seen: set[str] = set()  # webhook-id of the events handled already (a database table in production)


class Alerts(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            # The signature must match, and webhook-timestamp be within 5 minutes: a replay fails.
            event = webhook.verify(body, dict(self.headers))
        except WebhookVerificationError:
            self.send_response(400)
            self.end_headers()
            return
        self.send_response(204)  # answer at once; do slow work elsewhere
        self.end_headers()
        if self.headers["webhook-id"] in seen:
            return  # a retry of an event handled already
        seen.add(self.headers["webhook-id"])
        data = event["data"]
        if event["type"] == "credit.low":
            print(f"{data['order_id']}: {data['threshold']} % used", flush=True)
        elif event["type"] == "key.replaced":
            print(f"{data['order_id']}: key replaced ({data['stage']})", flush=True)
        else:
            print(event["type"], data["order_id"], flush=True)


# Listen behind your HTTPS reverse proxy; the shop calls public https:// URLs only.
HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8080"))), Alerts).serve_forever()
