"""Errors raised by :class:`cheaptokens.venice.client.VeniceClient`.

Venice sends no machine-readable code on its key-management errors, only an HTTP
status and an ``error`` string (docs/venice-facts.md §4.1), so the subclass is chosen from both::

    VeniceError                    any failure talking to Venice
    ├── AuthenticationFailed       401 "Authentication failed": unknown, revoked or expired key
    ├── PermissionDenied           401 "Admin API key required" (docs/venice-facts.md §1.8), 403
    ├── SpendLimitExceeded         402 "API key … spend limit exceeded" (per-key cap reached)
    ├── InsufficientBalance        402 "Insufficient USD or Diem balance…" (account empty)
    ├── NotFound                   404; 400 "API key not found" / "could not be found" /
    │                              "not found or expired" (docs/venice-facts.md §1.1)
    ├── InvalidRequest             any other 4xx; ``fields`` names the fields Venice rejected
    ├── RateLimited                429 still there after the retries; ``retry_after`` seconds
    ├── Unavailable                5xx or transport error/timeout, after the retries
    │   └── OutcomeUnknown         a non-idempotent call (key creation) may have taken
    │                              effect: reconcile before trying again
    └── UnexpectedResponse         a 2xx whose body is not the documented shape

Every error carries the HTTP ``method``, the request ``path``, the ``status`` (``None`` when
Venice never answered) and Venice's ``message``. None of them ever holds the admin key or
a key secret: messages are scrubbed of anything that looks like a Venice key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "AuthenticationFailed",
    "InsufficientBalance",
    "InvalidRequest",
    "NotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "RateLimited",
    "SpendLimitExceeded",
    "Unavailable",
    "UnexpectedResponse",
    "VeniceError",
    "VeniceUnavailable",
    "error_for_status",
    "redact",
]

# Venice secrets start with these prefixes (docs/venice-facts.md §1.2); scrub them wherever
# they appear.
_SECRET_RE = re.compile(r"VENICE_[A-Z]+_KEY_[A-Za-z0-9_\-]*")
_MAX_MESSAGE = 300


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with every Venice-looking key and every given secret replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _SECRET_RE.sub("[redacted]", text)


class VeniceError(Exception):
    """Base class: ``status`` (or ``None``), Venice's ``message``, ``method`` and ``path``."""

    def __init__(
        self, message: str, *, status: int | None = None, method: str = "", path: str = ""
    ) -> None:
        self.message = redact(message)[:_MAX_MESSAGE]
        self.status = status
        self.method = method
        self.path = path
        super().__init__(self.message)

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        status = f"{self.status} " if self.status is not None else ""
        return f"{where}: {status}{self.message}" if where else f"{status}{self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, message={self.message!r}, "
            f"method={self.method!r}, path={self.path!r})"
        )


class AuthenticationFailed(VeniceError):
    """The admin key is unknown, revoked or expired (401 "Authentication failed")."""


class PermissionDenied(VeniceError):
    """The key may not call this route: an INFERENCE key on an admin route (401), or 403."""


class SpendLimitExceeded(VeniceError):
    """402: the calling key has reached its own consumption limit (account may still have funds)."""


class InsufficientBalance(VeniceError):
    """402: the account's shared DIEM/credit/USD pool cannot pay for the request."""


class NotFound(VeniceError):
    """The key does not exist (or has expired, which Venice reports the same way)."""


class InvalidRequest(VeniceError):
    """Venice rejected the request (other 4xx); ``fields`` lists the fields it named."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str = "",
        path: str = "",
        fields: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, status=status, method=method, path=path)
        self.fields = fields

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} (fields: {', '.join(self.fields)})" if self.fields else base


class RateLimited(VeniceError):
    """429 after the retries; ``retry_after`` is Venice's hint in seconds, when it gave one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, method=method, path=path)
        self.retry_after = retry_after


class Unavailable(VeniceError):
    """Venice answered 5xx or could not be reached, and the retries are used up."""


#: The name the shop's design notes use for :class:`Unavailable`.
VeniceUnavailable = Unavailable


class OutcomeUnknown(Unavailable):
    """The request may have reached Venice and taken effect, but no answer came back.

    Raised for ``POST /api_keys`` instead of retrying it: a retry could create a second key.
    The caller finds out by listing keys and matching the description it sent.
    """


class UnexpectedResponse(VeniceError):
    """A success status whose body is not the shape docs/venice-facts.md §1–2 documents."""


def _is_not_found(message: str) -> bool:
    # SK-KEYS strings: "API key not found", "API key not found or expired",
    # "API key could not be found" (docs/venice-facts.md §1.1).
    text = message.lower()
    return "not found" in text or "could not be found" in text


def error_for_status(
    status: int,
    message: str,
    *,
    method: str,
    path: str,
    fields: tuple[str, ...] = (),
    retry_after: float | None = None,
) -> VeniceError:
    """Map a non-2xx Venice answer to the matching exception (see the tree above)."""
    if status == 429:
        return RateLimited(message, method=method, path=path, retry_after=retry_after)
    if status == 404 or (status == 400 and _is_not_found(message)):
        return NotFound(message, status=status, method=method, path=path)
    cls = _simple_class(status, message.lower())
    if cls is None:
        return InvalidRequest(message, status=status, method=method, path=path, fields=fields)
    return cls(message, status=status, method=method, path=path)


def _simple_class(status: int, text: str) -> type[VeniceError] | None:
    """The subclass for ``status``/lower-cased message, or ``None`` for InvalidRequest."""
    if status == 401:
        return PermissionDenied if "admin api key required" in text else AuthenticationFailed
    if status == 403:
        return PermissionDenied
    if status == 402 and "spend limit" in text:
        return SpendLimitExceeded
    if status == 402 and "insufficient" in text:
        return InsufficientBalance
    if status >= 500:
        return Unavailable
    if 400 <= status < 500:
        return None
    return VeniceError
