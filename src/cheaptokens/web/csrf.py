"""CSRF protection for the HTML forms, and the operator's signed session cookie.

CSRF uses a *signed double submit*: the browser holds a random nonce in an HttpOnly,
SameSite=Lax cookie (``ct_csrf``) and every form carries ``HMAC(mac_key, nonce)``. A
cross-site page can neither read the cookie nor compute the HMAC, so it cannot forge the
form field; the HMAC (not the raw nonce) in the page means a leaked page alone is useless
without the cookie. The key is the shop's ``SecretBox.mac_key``, with a purpose prefix so
these MACs can never be confused with order tokens or checkout links.

The admin session is ``<expiry>.<hmac(user, expiry)>`` in an HttpOnly cookie: no state on
the server, and it dies with the expiry or with a new data key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from fastapi import Request
from fastapi.responses import Response

from cheaptokens.errors import ShopError

CSRF_COOKIE = "ct_csrf"
CSRF_FIELD = "csrf_token"
ADMIN_COOKIE = "ct_admin"
ADMIN_SESSION_SECONDS = 8 * 3600


class CsrfRejected(ShopError):
    """The form's token is missing or does not match this browser's cookie."""

    status = 403
    code = "csrf_rejected"


def _mac(key: bytes, purpose: str, value: str) -> str:
    return hmac.new(key, f"{purpose}|{value}".encode(), hashlib.sha256).hexdigest()


class CsrfToken:
    """The nonce for this request (new if the browser has none) and its form token."""

    def __init__(self, request: Request, key: bytes) -> None:
        existing = request.cookies.get(CSRF_COOKIE, "")
        self.is_new = not (16 <= len(existing) <= 128)
        self.nonce = secrets.token_urlsafe(32) if self.is_new else existing
        self.value = _mac(key, "csrf", self.nonce)

    def set_cookie(self, response: Response, *, secure: bool) -> Response:
        """Give the browser the nonce (only when it did not already have one)."""
        if self.is_new:
            response.set_cookie(
                CSRF_COOKIE, self.nonce, httponly=True, samesite="lax", secure=secure, path="/"
            )
        return response


def verify(request: Request, key: bytes, submitted: object) -> None:
    """Raise :class:`CsrfRejected` unless ``submitted`` is the token for the cookie's nonce."""
    nonce = request.cookies.get(CSRF_COOKIE, "")
    if not nonce or not isinstance(submitted, str) or not submitted:
        raise CsrfRejected(
            "this form has expired or cookies are blocked; reload the page and send it again"
        )
    if not hmac.compare_digest(_mac(key, "csrf", nonce), submitted):
        raise CsrfRejected("this form has expired; reload the page and send it again")


# ------------------------------------------------------------------------- admin session
def admin_cookie_value(key: bytes, user: str, *, now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + ADMIN_SESSION_SECONDS)
    return f"{expires}.{_mac(key, 'admin', f'{user}|{expires}')}"


def admin_session_valid(key: bytes, user: str, cookie: str | None) -> bool:
    """True if ``cookie`` is an unexpired session for ``user`` signed with ``key``."""
    if not cookie or "." not in cookie:
        return False
    expires_text, _, sig = cookie.partition(".")
    if not expires_text.isdigit() or int(expires_text) < time.time():
        return False
    return hmac.compare_digest(_mac(key, "admin", f"{user}|{expires_text}"), sig)
