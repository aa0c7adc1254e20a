"""The operator's password setting: a hash made by ``cheaptokens admin hash-password``, or
the password itself.

``CHEAPTOKENS_ADMIN_PASSWORD`` holds one of

- ``$argon2id$v=19$m=…,t=…,p=…$SALT$HASH`` — Argon2id (argon2-cffi), what ``hash-password``
  makes by default;
- ``scrypt:N:R:P:SALT:HASH`` — ``hashlib.scrypt`` with cost ``N`` (a power of two), block size
  ``R``, parallelism ``P``, and the salt and 32-byte hash in base64 (``--scheme scrypt``);
- anything else: the password itself.

Every form is checked in constant time (Argon2 and scrypt by recomputing the hash; a plain
password by comparing SHA-256 digests with :func:`hmac.compare_digest`). An empty setting
never matches: the dashboard stays closed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ARGON2_PREFIX = "$argon2"
SCRYPT_PREFIX = "scrypt:"
Scheme = Literal["argon2", "scrypt"]

#: scrypt parameters of new hashes: 16 MiB of memory and ~50 ms per check on one core.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SCRYPT_MAXMEM = 256 * 1024 * 1024
_HASHER = PasswordHasher()  # argon2-cffi's defaults (RFC 9106, low-memory profile)


def kind(setting: str) -> Literal["argon2", "scrypt", "plain"]:
    """Which form the setting is in."""
    if setting.startswith(ARGON2_PREFIX):
        return "argon2"
    if setting.startswith(SCRYPT_PREFIX):
        return "scrypt"
    return "plain"


def hash_password(password: str, *, scheme: Scheme = "argon2") -> str:
    """A hash of ``password`` for ``CHEAPTOKENS_ADMIN_PASSWORD``, with a fresh random salt."""
    if not password:
        raise ValueError("the password is empty")
    if scheme == "argon2":
        return _HASHER.hash(password)
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"{SCRYPT_PREFIX}{SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}:{_b64(salt)}:{_b64(digest)}"


def problem(setting: str) -> str | None:
    """Why a setting that looks like a hash cannot be used (None if it can, or is plain)."""
    form = kind(setting)
    if form == "argon2":
        try:
            _HASHER.check_needs_rehash(setting)  # parses the hash's parameters
        except (InvalidHashError, ValueError):
            return "it starts like an Argon2 hash ($argon2…) but is not one"
        if not setting.startswith("$argon2id$"):
            return "only Argon2id hashes ($argon2id$…) are accepted"
        return None
    if form == "scrypt":
        return None if _scrypt_parts(setting) is not None else _SCRYPT_FORMAT
    return None


def verify(setting: str, password: str) -> bool:
    """Does ``password`` match the setting? Constant time; an empty setting never matches."""
    if not setting:
        # Spend about what a check costs, so an unconfigured shop is not told apart by time.
        hmac.compare_digest(hashlib.sha256(password.encode()).digest(), bytes(32))
        return False
    form = kind(setting)
    if form == "argon2":
        try:
            return _HASHER.verify(setting, password)
        except (VerificationError, InvalidHashError, ValueError):
            return False
    if form == "scrypt":
        parts = _scrypt_parts(setting)
        if parts is None:
            return False
        n, r, p, salt, expected = parts
        return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(expected)), expected)
    return hmac.compare_digest(
        hashlib.sha256(password.encode()).digest(), hashlib.sha256(setting.encode()).digest()
    )


# ---------------------------------------------------------------------------- scrypt
_SCRYPT_FORMAT = (
    "a scrypt hash is scrypt:N:R:P:SALT:HASH (N a power of two up to 2^20, R up to 32, P up "
    "to 16, SALT and HASH base64); make one with `cheaptokens admin hash-password`"
)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int = 32) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=_SCRYPT_MAXMEM
    )


def _scrypt_parts(setting: str) -> tuple[int, int, int, bytes, bytes] | None:
    fields = setting.removeprefix(SCRYPT_PREFIX).split(":")
    if len(fields) != 5 or not all(f.isdigit() for f in fields[:3]):
        return None
    n, r, p = (int(f) for f in fields[:3])
    if not (2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        return None
    try:
        salt = base64.b64decode(fields[3], validate=True)
        digest = base64.b64decode(fields[4], validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(salt) < 8 or not 16 <= len(digest) <= 64:
        return None
    return n, r, p, salt, digest
