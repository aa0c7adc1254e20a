"""CSRF protection for the HTML forms, and what binds an operator session to the password.

CSRF uses a *signed double submit*: the browser holds a random nonce in an HttpOnly,
SameSite=Lax cookie (``ct_csrf``) and every form carries ``HMAC(mac_key, nonce)``. A
cross-site page can neither read the cookie nor compute the HMAC, so it cannot forge the
form field; the HMAC (not the raw nonce) in the page means a leaked page alone is useless
without the cookie. The key is the shop's ``SecretBox.mac_key``, with a purpose prefix so
these MACs can never be confused with order tokens or checkout links.

The operator's session lives on the server (:mod:`cheaptokens.operators`): the HttpOnly
``ct_admin`` cookie holds a random id, the database its hash, bound to
:func:`password_fingerprint`; logging out deletes it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request
from fastapi.responses import Response

from cheaptokens.errors import ShopError

CSRF_COOKIE = "ct_csrf"
CSRF_FIELD = "csrf_token"
ADMIN_COOKIE = "ct_admin"


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
def password_fingerprint(key: bytes, user: str, setting: str) -> str:
    """What an operator session is bound to: a MAC of the user name and the password setting
    (never the password). Changing either, or the data key, ends every session."""
    return _mac(key, "admin-password", f"{len(user)}|{user}|{setting}")
