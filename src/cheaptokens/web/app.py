"""The app factory: one FastAPI app per :class:`~cheaptokens.shop.Shop`."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cheaptokens import __version__
from cheaptokens.shop import Shop
from cheaptokens.web import (
    api,
    dashboard,
    errors,
    favicon,
    health,
    metrics,
    pages,
    payments,
    stream,
)
from cheaptokens.web.limits import ShopLimits
from cheaptokens.web.pricecache import PriceCache
from cheaptokens.web.render import HERE

#: On every response (a handler's own value for one of these wins).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


#: Sent when the public URL is https: browsers then refuse plain http for a year.
HSTS = "max-age=31536000"
#: Answers under these paths are never stored by a browser or proxy: order data and keys
#: (an x402 purchase, a wallet's orders, standing orders and their tokens too), payment pages
#: (whoever holds a checkout URL can pay or decline), the operator's dashboard.
NO_STORE_PREFIXES = (
    "/api/orders",
    "/api/buy",
    "/api/wallet/",
    "/api/standing-orders",
    "/orders",
    "/admin",
    "/checkout/",
    "/buy",
)


def security_headers(shop: Shop) -> dict[str, str]:
    """The headers every answer of this shop carries."""
    headers = dict(SECURITY_HEADERS)
    if shop.settings.public_url.startswith("https://"):
        headers["Strict-Transport-Security"] = HSTS
    return headers


class SecurityHeaders:
    """Add :func:`security_headers` to every response, and ``Cache-Control: no-store`` under
    :data:`NO_STORE_PREFIXES`.

    A pure ASGI middleware: it edits the ``http.response.start`` message on its way out,
    without wrapping the response in a task and a stream as ``BaseHTTPMiddleware`` does
    (which cost 12 % of a quote's CPU). 500 answers are sent from outside every middleware;
    :func:`cheaptokens.web.errors.install` gives them the same headers.
    """

    def __init__(self, app: ASGIApp, *, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = str(scope.get("path", "")).startswith(NO_STORE_PREFIXES)

        async def send_hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    if name not in headers:
                        headers.append(name, value)
                if no_store:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_hardened)


#: The largest request body the shop reads. Its own JSON and forms are a few hundred bytes;
#: provider webhooks (a Stripe event with its Checkout Session) a few kilobytes.
MAX_BODY_BYTES = 64 * 1024
MAX_WEBHOOK_BODY_BYTES = 1024 * 1024


class BodyLimit:
    """Refuse request bodies over the limit with 413, before any handler buffers them.

    A declared ``Content-Length`` over the limit is answered at once; a body sent without one
    (chunked) is counted as it is read and the read fails with a 413 as soon as it passes the
    limit, so no handler ever holds more than the limit in memory.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = MAX_WEBHOOK_BODY_BYTES if path.startswith("/webhooks/") else MAX_BODY_BYTES
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, receive, send, limit)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise StarletteHTTPException(413, _too_large(limit))
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except StarletteHTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await self._refuse(scope, receive, send, limit)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        body = errors.error_body("too_large", _too_large(limit))
        await JSONResponse(body, status_code=413, headers={"Connection": "close"})(
            scope, receive, send
        )


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


#: Work to run beside the app while it serves (``cheaptokens serve`` passes the worker's
#: loop); it is handed an event that is set when the app shuts down.
Background = Callable[[threading.Event], None]


def create_app(shop: Shop, *, background: Background | None = None) -> FastAPI:
    """The shop's web app; ``background`` (e.g. a worker) runs on a thread while it serves."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = None
        if shop.x402 is not None:  # the first paid request should not wait for /supported
            threading.Thread(target=shop.x402.warm, name="x402-warm-up", daemon=True).start()
        if background is not None:
            thread = threading.Thread(
                target=background, args=(stop,), name="cheaptokens-worker", daemon=True
            )
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=10)

    app = FastAPI(
        title="CheapTokens",
        version=__version__,
        summary="Discounted same-day Venice.ai credit, delivered as real Venice API keys.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI loads from a CDN: the shop must work offline
        redoc_url=None,
    )
    app.state.shop = shop
    app.state.limiter = ShopLimits.from_settings(shop.settings)
    app.state.ticker = stream.PriceTicker(shop)
    app.state.readiness = health.Readiness(shop)
    app.state.price_cache = PriceCache(
        lambda: api.pricing(shop).model_dump_json().encode(),
        ttl=shop.settings.pricing_cache_seconds,
    )
    hardened = security_headers(shop)
    errors.install(app, crash_headers={**hardened, "Cache-Control": "no-store"})
    app.include_router(api.router)
    app.include_router(stream.router)
    app.include_router(payments.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_middleware(BodyLimit)  # inside SecurityHeaders, so a 413 carries them too
    app.add_middleware(SecurityHeaders, headers=hardened)

    app.include_router(health.router)  # /healthz, /readyz
    if shop.settings.metrics_port is None:  # else on its own port (cheaptokens serve)
        app.include_router(metrics.router)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon_ico() -> Response:
        return Response(
            favicon.ico(), media_type="image/x-icon", headers={"Cache-Control": "max-age=86400"}
        )

    app.include_router(pages.router)
    app.include_router(dashboard.router)

    return app
