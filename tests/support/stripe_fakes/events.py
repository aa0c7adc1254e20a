"""Webhook bodies shaped like Stripe Events (https://docs.stripe.com/api/events/object)."""

from __future__ import annotations

import json
import secrets
from typing import Any


def stripe_event(
    event_type: str,
    data_object: dict[str, Any],
    *,
    created: int,
    event_id: str | None = None,
) -> bytes:
    """The raw JSON body Stripe would POST for ``event_type`` about ``data_object``."""
    body = {
        "id": event_id or "evt_test_" + secrets.token_hex(12),
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": created,
        "data": {"object": data_object},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    return json.dumps(body, indent=2).encode()
