"""Sign-in-with-x (x402's SIWX extension): a wallet proves it is the buyer.

A route that wants a wallet answers 402 with a challenge in ``PaymentRequired.extensions``
(``accepts`` empty: nothing to pay); the SDK's client signs the CAIP-122 (EIP-4361) message
with the wallet (EIP-191) and sends it back in the ``SIGN-IN-WITH-X`` header. The SDK parses,
validates (domain, URI origin, issuedAt age, expiry, notBefore) and verifies the signature
(:func:`verify`). Two checks are the shop's own, because the SDK's server extension makes a
plain random nonce and grants any route of the origin: the nonce carries an HMAC of the
challenge (so only challenges the shop issued are taken, bound to the one URI they were issued
for: a sign-in for the purchase list cannot reissue a key), and the caller records every used
nonce (a replayed sign-in is refused).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from x402.extensions.sign_in_with_x import (
    SIGN_IN_WITH_X,
    SIWxValidationOptions,
    build_siwx_schema,
    parse_siwx_header,
    validate_siwx_message,
    verify_siwx_signature,
)

from cheaptokens.payments.errors import PaymentError
from cheaptokens.payments.x402 import checksum_address

HEADER: Final = "SIGN-IN-WITH-X"
STATEMENT: Final = "Sign in to CheapTokens with this wallet to see and manage its purchases."


class SignInRefused(PaymentError):
    """The sign-in is missing, malformed, expired, not ours, for another URI or forged."""


@dataclass(frozen=True, slots=True)
class SignIn:
    address: str  # checksummed
    nonce: str
    expires_at: datetime


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _mac(key: bytes, *parts: str) -> str:
    text = "\x1f".join(("siwx", *parts)).encode()
    return hmac.new(key, text, hashlib.sha256).hexdigest()[:24]


def challenge(*, key: bytes, uri: str, network: str, now: datetime, seconds: int) -> dict[str, Any]:
    """The SIWX declaration for ``PaymentRequired.extensions``, bound to ``uri``."""
    issued, expires = _iso(now), _iso(now + timedelta(seconds=seconds))
    random = secrets.token_hex(8)
    info = {
        "domain": urlsplit(uri).netloc,
        "uri": uri,
        "statement": STATEMENT,
        "version": "1",
        "nonce": random + _mac(key, random, uri, issued, expires),
        "issuedAt": issued,
        "expirationTime": expires,
        "resources": [uri],
    }
    return {
        SIGN_IN_WITH_X: {
            "info": info,
            "supportedChains": [{"chainId": network, "type": "eip191"}],
            "schema": build_siwx_schema(),
        }
    }


def verify(header: str, *, key: bytes, uri: str, max_age_seconds: int) -> SignIn:
    """Check a ``SIGN-IN-WITH-X`` header for ``uri`` (raises :class:`SignInRefused`)."""
    try:
        payload = parse_siwx_header(header)
    except ValueError:
        raise SignInRefused("the SIGN-IN-WITH-X header is malformed", code="invalid_siwx") from None
    if payload.uri != uri:
        raise SignInRefused(
            "this sign-in was made for another request", code="invalid_siwx_uri_mismatch"
        )
    nonce, expires = payload.nonce, payload.expiration_time
    if (
        expires is None
        or len(nonce) != 40
        or not hmac.compare_digest(
            nonce[16:], _mac(key, nonce[:16], uri, payload.issued_at, expires)
        )
    ):
        raise SignInRefused("this sign-in was not issued by the shop", code="invalid_siwx_nonce")
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(uri))
    options = SIWxValidationOptions(max_age=max_age_seconds * 1000)
    validation = asyncio.run(validate_siwx_message(payload, origin, options))
    if not validation.is_valid:
        raise SignInRefused(
            validation.invalid_message or "the sign-in is not valid",
            code=validation.invalid_reason or "invalid_siwx",
        )
    verification = asyncio.run(verify_siwx_signature(payload))
    address = checksum_address(verification.payer) if verification.is_valid else None
    if address is None:
        raise SignInRefused(
            "the sign-in's signature does not match its wallet", code="invalid_siwx_signature"
        )
    when = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    return SignIn(address, nonce, when)
