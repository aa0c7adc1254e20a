"""Stripe's webhook signature scheme, with an injected clock.

Stripe signs ``f"{t}.{raw body}"`` with HMAC-SHA256 under the endpoint's signing secret and
sends ``Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`` (several v1 entries while a
secret is being rolled). https://docs.stripe.com/webhooks#verify-manually

``stripe.Webhook.construct_event`` does the same but reads ``time.time()``; the shop passes
``now`` explicitly (docs/architecture.md, "Pure domain"), so the check is written here. The sandbox
provider reuses the scheme with its own key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

from cheaptokens.payments.errors import WebhookSignatureError

DEFAULT_TOLERANCE_SECONDS = 300


def _mac(payload: bytes, key: bytes, timestamp: int) -> str:
    return hmac.new(key, f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()


def sign_webhook(payload: bytes, secret: str, timestamp: int) -> str:
    """Return the ``Stripe-Signature`` header value Stripe would send for ``payload``."""
    return f"t={timestamp},v1={_mac(payload, secret.encode(), timestamp)}"


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that works for plain dicts and Starlette headers."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not value.isdigit():
                raise WebhookSignatureError("webhook signature header has a bad timestamp")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise WebhookSignatureError("webhook signature header has no timestamp")
    if not signatures:
        raise WebhookSignatureError("webhook signature header has no v1 signature")
    return timestamp, signatures


def verify_signature(
    *,
    payload: bytes,
    header: str | None,
    key: bytes,
    now: datetime,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """Check a ``t=...,v1=...`` header over the raw body; return its timestamp.

    Raises WebhookSignatureError when the header is missing or malformed, no v1 signature
    matches, or the timestamp is more than ``tolerance_seconds`` away from ``now``. Stripe's SDK
    only rejects old timestamps; rejecting far-future ones too keeps a leaked signed body from
    being replayable for longer than the tolerance.
    """
    if not header:
        raise WebhookSignatureError("webhook signature header is missing")
    timestamp, signatures = _parse_header(header)
    expected = _mac(payload, key, timestamp)
    expected_bytes = expected.encode()
    if not any(hmac.compare_digest(expected_bytes, c.encode()) for c in signatures):
        raise WebhookSignatureError("webhook signature does not match the body")
    age = now.timestamp() - timestamp
    if abs(age) > tolerance_seconds:
        raise WebhookSignatureError(
            f"webhook timestamp is {int(age)} s away from now (tolerance {tolerance_seconds} s)"
        )
    return timestamp
