"""A test-only Stripe Checkout Sessions server, in front of localstripe.

Implements, following Stripe's documented shapes (https://docs.stripe.com/api/checkout/sessions):

- ``POST /v1/checkout/sessions`` (form-encoded, ``line_items[0][price_data][unit_amount]=...``):
  validates what the shop relies on (``mode=payment``, one priced line item, 30 min ≤
  ``expires_at`` - now ≤ 24 h) and answers a ``cs_test_...`` session with ``url``, ``status``,
  ``payment_status``, ``amount_total``, ``currency``, ``metadata``, ``payment_intent`` (null
  until paid, as in current API versions);
- ``GET /v1/checkout/sessions/{id}``;
- Stripe's idempotency (https://docs.stripe.com/api/idempotent_requests): a POST repeated with
  the same ``Idempotency-Key`` gets the first answer replayed; with other parameters, a 400
  ``idempotency_error``. localstripe has no idempotency, so this applies to forwarded calls too;
- every other ``/v1/...`` request is forwarded to ``upstream`` (localstripe) when given.

Tests drive the buyer's side with ``mark_paid`` / ``mark_expired``; with an upstream, paying
creates and confirms a real localstripe PaymentIntent so refunds can hit it.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

_SESSION_PATH = re.compile(r"^/v1/checkout/sessions/(?P<id>[A-Za-z0-9_]+)$")
_KEY_PART = re.compile(r"\[([^\]]*)\]")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    idempotency_key: str | None
    params: dict[str, Any]


class StripeHTTPError(Exception):
    def __init__(self, status: int, error_type: str, message: str, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": error_type, "message": message, "param": param}}


def unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Decode Stripe's ``a[b][0][c]=v`` form encoding into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head = key.split("[", 1)[0]
        parts = [head, *_KEY_PART.findall(key[len(head) :])]
        node: dict[str, Any] = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def listify(value: Any) -> Any:
        if isinstance(value, dict):
            items = {k: listify(v) for k, v in value.items()}
            if items and all(k.isdigit() for k in items):
                return [items[k] for k in sorted(items, key=int)]
            return items
        return value

    result: dict[str, Any] = listify(root)
    return result


class FakeStripe:
    """``with FakeStripe(upstream=localstripe_url) as fake: fake.base_url``."""

    def __init__(
        self,
        *,
        upstream: str | None = None,
        api_key: str = "sk_test_FAKE_cheaptokens_not_a_real_key",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.upstream = upstream
        self.api_key = api_key
        self.clock = clock
        self.sessions: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self._idempotent: dict[str, tuple[str, int, bytes]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeStripe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- the buyer's side, driven by tests --------------------------------------------------------

    def mark_paid(self, session_id: str, *, payment_status: str = "paid") -> dict[str, Any]:
        """Complete the session as if the buyer paid (``payment_status="unpaid"``: a delayed
        method still pending). Returns the session as Stripe would put it in the webhook."""
        with self._lock:
            session = self.sessions[session_id]
        payment_intent = self._create_payment_intent(session)
        with self._lock:
            session.update(
                status="complete", payment_status=payment_status, payment_intent=payment_intent
            )
            return json.loads(json.dumps(session))

    def mark_expired(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            session = self.sessions[session_id]
            session.update(status="expired", url=None)
            return json.loads(json.dumps(session))

    def _create_payment_intent(self, session: dict[str, Any]) -> str:
        if self.upstream is None:
            return "pi_fake_" + secrets.token_hex(8)
        auth = {"Authorization": f"Bearer {self.api_key}"}
        with httpx.Client(base_url=self.upstream, headers=auth, timeout=10) as client:
            method = client.post(
                "/v1/payment_methods",
                data={
                    "type": "card",
                    "card[number]": "4242424242424242",
                    "card[exp_month]": "12",
                    "card[exp_year]": "2034",
                    "card[cvc]": "123",
                },
            )
            method.raise_for_status()
            intent = client.post(
                "/v1/payment_intents",
                data={
                    "amount": str(session["amount_total"]),
                    "currency": session["currency"],
                    "payment_method": method.json()["id"],
                    "confirm": "true",
                },
            )
            intent.raise_for_status()
            assert intent.json()["status"] == "succeeded"
            intent_id: str = intent.json()["id"]
            return intent_id

    # -- the API -------------------------------------------------------------------------------

    def _create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("mode") != "payment":
            raise StripeHTTPError(400, "invalid_request_error", "mode must be payment", "mode")
        items = params.get("line_items")
        if not isinstance(items, list) or len(items) != 1:
            raise StripeHTTPError(400, "invalid_request_error", "one line item", "line_items")
        price = items[0].get("price_data") or {}
        try:
            amount = int(price["unit_amount"]) * int(items[0]["quantity"])
            currency = str(price["currency"])
            name = str(price["product_data"]["name"])
        except (KeyError, ValueError, TypeError):
            raise StripeHTTPError(
                400, "invalid_request_error", "bad price_data", "line_items[0][price_data]"
            ) from None
        now = int(self.clock())
        expires_at = int(params.get("expires_at", now + 24 * 3600))
        if not now + 30 * 60 <= expires_at <= now + 24 * 3600:
            raise StripeHTTPError(
                400,
                "invalid_request_error",
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from "
                "Checkout Session creation.",
                "expires_at",
            )
        session_id = "cs_test_" + secrets.token_hex(16)
        return {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": amount,
            "amount_total": amount,
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "created": now,
            "currency": currency,
            "expires_at": expires_at,
            "livemode": False,
            "metadata": params.get("metadata") or {},
            "mode": "payment",
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": params.get("success_url"),
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            "_line_item_name": name,
        }

    def _local(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, bytes] | None:
        if method == "POST" and path == "/v1/checkout/sessions":
            session = self._create_session(params)
            with self._lock:
                self.sessions[session["id"]] = session
            return 200, self._public(session)
        match = _SESSION_PATH.match(path)
        if method == "GET" and match:
            with self._lock:
                found = self.sessions.get(match["id"])
            if found is None:
                raise StripeHTTPError(
                    404, "invalid_request_error", f"No such checkout.session: '{match['id']}'", "id"
                )
            return 200, self._public(found)
        return None

    @staticmethod
    def _public(session: dict[str, Any]) -> bytes:
        return json.dumps({k: v for k, v in session.items() if not k.startswith("_")}).encode()

    def _forward(
        self, method: str, path_qs: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        if self.upstream is None:
            raise StripeHTTPError(404, "invalid_request_error", f"Unrecognized URL {path_qs}")
        response = httpx.request(
            method, self.upstream + path_qs, headers=headers, content=body, timeout=10
        )
        return response.status_code, response.content

    def handle(
        self, method: str, path_qs: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        path = urlsplit(path_qs).path
        auth = headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            raise StripeHTTPError(401, "invalid_request_error", "Invalid API Key provided")
        pairs = parse_qsl(body.decode() if method == "POST" else urlsplit(path_qs).query)
        params = unflatten(pairs)
        key = headers.get("idempotency-key")
        with self._lock:
            self.requests.append(RecordedRequest(method, path, key, params))
        replay_id = f"{method} {path} {key}"
        if method == "POST" and key:
            with self._lock:
                seen = self._idempotent.get(replay_id)
            if seen is not None:
                if seen[0] != body.decode():
                    raise StripeHTTPError(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with.",
                    )
                return seen[1], seen[2]
        result = self._local(method, path, params)
        if result is None:
            forward_headers = {
                k: v for k, v in headers.items() if k in ("authorization", "content-type")
            }
            result = self._forward(method, path_qs, forward_headers, body)
        if method == "POST" and key and result[0] < 500:
            with self._lock:
                self._idempotent[replay_id] = (body.decode(), *result)
        return result

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    status, payload = fake.handle(self.command, self.path, headers, body)
                except StripeHTTPError as error:
                    status, payload = error.status, json.dumps(error.body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Request-Id", "req_" + secrets.token_hex(7))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        return Handler
