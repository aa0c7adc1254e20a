"""Order and quote ids, and the order's bearer token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session

from cheaptokens.errors import NotFound
from cheaptokens.models import Order
from cheaptokens.secretbox import token_matches

#: Every order id the shop makes (a payment event naming anything else is not ours).
ORDER_ID: Final = re.compile(r"ord_[0-9a-f]{32}")


def new_order_id() -> str:
    return "ord_" + uuid.uuid4().hex


def new_quote_id(at: datetime) -> str:
    """A quote id that sorts by time, like a UUIDv7 (which Python 3.11's uuid lacks): 12 hex
    digits of milliseconds since 1970, then 20 random ones (80 bits keep it unguessable).

    A night's prune then deletes neighbouring entries of the ids' index, and the orders' and
    top-ups' quote_id indexes it checks are probed in one region, instead of one page per
    quote scattered across a year of them (bench/README.md, "History, a full year")."""
    millis = int(at.timestamp() * 1000)
    return f"q_{millis:012x}{secrets.token_hex(10)}"


def is_order_id(value: str) -> bool:
    return ORDER_ID.fullmatch(value) is not None


#: Every top-up id (a top-up is paid like an order; its payment events carry this id).
TOPUP_ID: Final = re.compile(r"top_[0-9a-f]{32}")


def new_topup_id() -> str:
    return "top_" + uuid.uuid4().hex


def is_topup_id(value: str) -> bool:
    return TOPUP_ID.fullmatch(value) is not None


def order_token(order_id: str, *, token_key: bytes) -> str:
    """The bearer secret for an order: an HMAC of its id, so it can be re-shown on an
    idempotent replay without being stored (the table keeps only its hash)."""
    mac = hmac.new(token_key, b"order-token\x00" + order_id.encode(), hashlib.sha256).digest()
    return "ot_" + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def authorize(session: Session, *, order_id: str, token: str) -> Order:
    """The order if ``token`` is its bearer secret; NotFound otherwise (no hint which)."""
    order = session.get(Order, order_id)
    # Compare even when there is no such order, so timing tells nothing.
    stored = order.token_hash if order is not None else "0" * 64
    if not token_matches(token, stored) or order is None:
        raise NotFound("no order with that id and token")
    return order
