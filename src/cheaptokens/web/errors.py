"""Map every error to one JSON shape, in one place.

    {"error": {"code": "sold_out", "message": "...", "field": "credit_cents"}}

HTML pages get the same information rendered by :mod:`cheaptokens.web.pages`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from cheaptokens.errors import RateLimited, ShopError, SoldOut
from cheaptokens.times import iso_z

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    """What went wrong, for people (``message``) and programs (``code``, ``field``)."""

    model_config = ConfigDict(extra="allow")
    code: str = Field(description="Stable machine-readable code, e.g. sold_out, invalid_input.")
    message: str = Field(description="What happened and what to do, in plain words.")
    field: str | None = Field(default=None, description="The offending input, if one is.")
    available_cents: int | None = Field(default=None, description="sold_out: credit left.")
    returns_at: str | None = Field(default=None, description="sold_out: when credit returns.")


class ErrorOut(BaseModel):
    """Every error the API answers has this shape."""

    error: ErrorDetail


#: Pages people see get an HTML error that says what to do next (API clients get JSON).
HTML_MESSAGES: dict[int, tuple[str, str]] = {
    0: ("Something is not right", "The request could not be handled. Go back and try again."),
    404: (
        "Page not found",
        "There is no page at this address. Check the link, or start from the shop's home page.",
    ),
    405: (
        "Not allowed here",
        "This address does not take that kind of request. Go back and use the page's buttons.",
    ),
    413: ("Too much data", "The form sent more data than the shop accepts. Go back and send less."),
    500: (
        "Something went wrong on our side",
        # error.html adds how to reach the operator (CHEAPTOKENS_OPERATOR_CONTACT).
        "Nothing was charged twice. Wait a moment and try again.",
    ),
}
_MACHINE_PREFIXES = ("/api/", "/webhooks/", "/openapi.json", "/_sandbox")


def wants_html(request: Request) -> bool:
    if request.url.path.startswith(_MACHINE_PREFIXES):
        return False
    return "text/html" in request.headers.get("accept", "")


def html_page(request: Request, status: int, title: str, message: str) -> Response:
    from cheaptokens.web.pages import html_error

    return html_error(request, status=status, title=title, message=message)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the error statuses it can answer, with :class:`ErrorOut`."""
    words = {
        400: "Invalid input (names the field).",
        401: "The sign-in-with-x proof is missing, expired, replayed, or for another request.",
        403: "Refused: this buyer's keys spent past their limits repeatedly today.",
        404: "No such quote or order, or the token does not match.",
        409: "Conflicts with the current state: sold out, quote used or expired, key reused.",
        413: "The request body is too large.",
        422: "The request does not match the schema (names the field).",
        429: "Too many requests from this client; see Retry-After.",
        503: "A dependency (the payment provider) is unavailable; nothing was charged.",
    }
    return {code: {"model": ErrorOut, "description": words[code]} for code in statuses}


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return {"error": body}


def _field_of(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def _json_invalid(error: Mapping[str, Any], body: Any) -> str:
    """Where a JSON body broke, as line and column (FastAPI's ``loc`` holds the character
    offset into the body, which people and programs cannot use as a field name)."""
    ctx = error.get("ctx")
    reason = str(ctx.get("error", "")) if isinstance(ctx, Mapping) else ""
    loc = tuple(error.get("loc", ()))
    pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    where = ""
    if pos is not None and isinstance(body, str | bytes):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        pos = min(pos, len(text))
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        where = f" at line {line}, column {column}"
    elif pos is not None:
        where = f" at character {pos + 1}"
    return f"the body is not valid JSON: {reason or 'cannot be read'}{where}"


def _operator(request: Request) -> str:
    """The operator, for a JSON message: with CHEAPTOKENS_OPERATOR_CONTACT's address if set."""
    shop = getattr(request.app.state, "shop", None)
    contact = shop.settings.operator if shop is not None else None
    return f"the operator ({contact.label})" if contact else "the operator of this shop"


def install(app: FastAPI, *, crash_headers: Mapping[str, str] | None = None) -> None:
    """Register the handlers. ``crash_headers`` go on 500 answers, which Starlette sends from
    outside every middleware (so the security-headers middleware never sees them)."""
    on_crash = dict(crash_headers or {})

    @app.exception_handler(ShopError)
    async def shop_error(_request: Request, exc: ShopError) -> JSONResponse:
        extra: dict[str, Any] = {}
        headers: dict[str, str] = {}
        if isinstance(exc, SoldOut):
            extra = {
                "available_cents": exc.available_cents,
                "returns_at": iso_z(exc.returns_at),
            }
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after)
        return JSONResponse(
            error_body(exc.code, exc.message, exc.field, **extra),
            status_code=exc.status,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            message = _json_invalid(first, exc.body)
            return JSONResponse(error_body("invalid_input", message, "body"), status_code=422)
        field = _field_of(tuple(first.get("loc", ())))
        message = str(first.get("msg", "invalid request"))
        if field:
            message = f"{field}: {message}"
        return JSONResponse(error_body("invalid_input", message, field), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        if wants_html(request):
            title, message = HTML_MESSAGES.get(exc.status_code, HTML_MESSAGES[0])
            return html_page(request, exc.status_code, title, message)
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> Response:
        log.error("unhandled error: %s", type(exc).__name__)  # never the message: may hold data
        if wants_html(request):
            title, message = HTML_MESSAGES[500]
            page = html_page(request, 500, title, message)
            page.headers.update(on_crash or {})
            return page
        return JSONResponse(
            error_body(
                "internal_error",
                "something went wrong on our side; nothing was charged "
                f"twice — try again, and contact {_operator(request)} if it persists",
            ),
            status_code=500,
            headers=on_crash,
        )
