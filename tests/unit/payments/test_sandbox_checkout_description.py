"""The sandbox checkout token carries what the payment buys, for its Pay / Decline page."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from cheaptokens.payments.sandbox import MAX_DESCRIPTION, SandboxPayments

SECRET = b"sandbox-secret-FAKE-0123456789abcdef"
EXPIRES = datetime(2025, 6, 1, 12, 15, tzinfo=UTC)


def token_for(sandbox: SandboxPayments, description: str) -> str:
    checkout = sandbox.create_checkout(
        order_id="ord_1",
        amount_cents=83,
        currency="usd",
        description=description,
        success_url="http://shop.test/orders/ord_1",
        cancel_url="http://shop.test/",
        expires_at=EXPIRES,
    )
    return checkout.checkout_url.rsplit("/", 1)[1]


def test_description_round_trips_through_the_signed_token() -> None:
    text = "$5.00 of Venice.ai credit, valid until 00:00 UTC"
    token = token_for(SandboxPayments(SECRET, "http://shop.test"), text)
    read = SandboxPayments(SECRET, "http://elsewhere.test").read_checkout(token)
    assert (read.description, read.amount_cents) == (text, 83)
    assert not read.is_expired(EXPIRES - timedelta(seconds=1))


def test_a_long_description_is_cut_so_the_url_stays_short() -> None:
    sandbox = SandboxPayments(SECRET, "http://shop.test")
    token = token_for(sandbox, "x" * 5000)
    assert sandbox.read_checkout(token).description == "x" * MAX_DESCRIPTION
    assert len(token) < 600


def test_a_token_made_before_descriptions_still_reads() -> None:
    sandbox = SandboxPayments(SECRET, "http://shop.test")
    body = json.dumps(
        {"v": 1, "o": "ord_1", "a": 83, "c": "usd", "e": int(EXPIRES.timestamp())},
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    body_b64 = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
    mac = hmac.new(sandbox._checkout_key, body_b64.encode(), hashlib.sha256).digest()
    token = f"{body_b64}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    read = sandbox.read_checkout(token)
    assert (read.order_id, read.amount_cents, read.description) == ("ord_1", 83, "")
