"""Encryption at rest for buyers' keys (AES-256-GCM from ``cryptography``).

The data key comes from ``CHEAPTOKENS_DATA_KEY`` (base64 of 32 bytes); on the offline
default it is generated once into ``<data_dir>/data.key`` (mode 0600). Each secret is
sealed with a fresh 96-bit nonce and bound to its order id as associated data, so a
ciphertext copied onto another order does not open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pathlib
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = b"\x01"


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the data key must be 32 bytes")
        self._aead = AESGCM(key)
        # A separate key for HMACs (sandbox checkout tokens), derived so one setting suffices.
        self.mac_key = hashlib.sha256(b"cheaptokens-mac\x00" + key).digest()

    def __repr__(self) -> str:
        return "SecretBox(<hidden>)"

    def seal(self, plaintext: str, *, context: str) -> bytes:
        nonce = os.urandom(12)
        return VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def open(self, sealed: bytes, *, context: str) -> str:
        if sealed[:1] != VERSION:
            raise ValueError("unknown ciphertext version")
        nonce, body = sealed[1:13], sealed[13:]
        return self._aead.decrypt(nonce, body, context.encode()).decode()


def load_data_key(configured: str, data_dir: pathlib.Path) -> bytes:
    """The configured key, or the one generated into ``data_dir`` on first use."""
    if configured:
        key = base64.b64decode(configured, validate=True)
        if len(key) != 32:
            raise ValueError("CHEAPTOKENS_DATA_KEY must be base64 of exactly 32 bytes")
        return key
    path = data_dir / "data.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(base64.b64encode(secrets.token_bytes(32)))
    return base64.b64decode(path.read_bytes().strip(), validate=True)


def hash_token(token: str) -> str:
    """What the database keeps of an order token: its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented token with the stored hash."""
    return hmac.compare_digest(hash_token(token), stored_hash)
