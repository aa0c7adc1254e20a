"""The app factory: one FastAPI app per :class:`~cheaptokens.shop.Shop`."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from cheaptokens import __version__
from cheaptokens.shop import Shop
from cheaptokens.web import api, dashboard, errors, pages, payments
from cheaptokens.web.deps import SlidingWindow
from cheaptokens.web.render import HERE

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


def create_app(shop: Shop, *, run_worker: bool = False) -> FastAPI:
    """The shop's web app; with ``run_worker`` it also runs a worker thread in-process."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = None
        if run_worker:
            from cheaptokens.worker.runner import Worker

            worker = Worker(shop)
            thread = threading.Thread(
                target=worker.run_forever, args=(stop,), name="cheaptokens-worker", daemon=True
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
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.shop = shop
    app.state.limiter = SlidingWindow()
    errors.install(app)
    app.include_router(api.router)
    app.include_router(payments.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith("/api/orders") or request.url.path.startswith("/orders"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(pages.router)
    app.include_router(dashboard.router)

    return app
