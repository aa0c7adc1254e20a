"""``cheaptokens serve``: the web shop, with an in-process worker.

On the offline default (``CHEAPTOKENS_VENICE_MODE=sandbox``) it also runs the Venice
sandbox in the same process (one account, ``CHEAPTOKENS_SANDBOX_DIEM`` DIEM a day) at
``http://127.0.0.1:8001/api/v1``, and the shop's clock follows the sandbox clock, so
``POST /_sandbox/clock`` moves both. The sandbox keeps its accounts, keys and charges in
``<data_dir>/sandbox-state.json`` (``CHEAPTOKENS_DATA_DIR``, default ``var``), so every key
the shop sold still works after a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from cheaptokens.cli import logs
from cheaptokens.cli._common import (
    KEEP_ALIVE_SECONDS,
    load_settings,
    refuse_unsafe_live,
    setup_logging,
)

if TYPE_CHECKING:
    from cheaptokens.config import Settings
    from cheaptokens.sandbox import Sandbox

log = logging.getLogger("cheaptokens.serve")


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the web shop (and, offline, the Venice sandbox and a worker)",
        description="Run the shop's web server. Settings come from CHEAPTOKENS_* environment "
        "variables (see docs/operations.md); the options below override a few.",
    )
    p.add_argument("--host", help="interface to bind (CHEAPTOKENS_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (CHEAPTOKENS_PORT, 8000)")
    p.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics on this port of CHEAPTOKENS_METRICS_HOST (127.0.0.1) instead of the "
        "shop's port (CHEAPTOKENS_METRICS_PORT; unset: on the shop's port)",
    )
    p.add_argument("--no-worker", action="store_true", help="do not run a worker in-process")
    p.add_argument("--no-migrate", action="store_true", help="do not upgrade the database first")
    p.add_argument("--log-level", default="info", help="info, debug, warning (info)")
    p.set_defaults(func=run)


SANDBOX_STATE_FILE = "sandbox-state.json"


def build_sandbox(settings: Settings) -> Sandbox:
    """The offline default's Venice sandbox: one account, a running clock, its state kept in
    ``<data_dir>/sandbox-state.json`` so the keys sold survive a restart."""
    from cheaptokens.config import SANDBOX_ADMIN_KEY
    from cheaptokens.sandbox import AccountSpec, Sandbox

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Sandbox(
        [AccountSpec(admin_key=SANDBOX_ADMIN_KEY, diem=settings.sandbox_diem)],
        frozen=False,
        state_path=settings.data_dir / SANDBOX_STATE_FILE,
    )


def forwarding(proxies: list[str]) -> dict[str, Any]:
    """uvicorn's proxy settings: believe ``X-Forwarded-For`` / ``-Proto`` only from the
    addresses in ``CHEAPTOKENS_TRUSTED_PROXIES``, and from no one when it is empty.

    (uvicorn's own default trusts 127.0.0.1, or ``$FORWARDED_ALLOW_IPS``: any local process,
    or a proxy on the same host that passes the header through, could then choose its address
    and escape every per-client limit.) With proxies, the client is the right-most address of
    ``X-Forwarded-For`` that is not a trusted proxy, so a client cannot forge the part the
    proxy appends.
    """
    if not proxies:
        return {"proxy_headers": False, "forwarded_allow_ips": []}
    return {"proxy_headers": True, "forwarded_allow_ips": list(proxies)}


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from cheaptokens import migrate
    from cheaptokens.shop import build_shop
    from cheaptokens.web.app import create_app
    from cheaptokens.web.metrics import metrics_app
    from cheaptokens.worker.maintenance import refresh_accounts
    from cheaptokens.worker.runner import Worker

    setup_logging(args.log_level)
    settings = load_settings(host=args.host, port=args.port, metrics_port=args.metrics_port)
    if refused := refuse_unsafe_live(settings):
        return refused
    if "CHEAPTOKENS_PUBLIC_URL" not in os.environ:
        # Links the shop hands out (checkout, order pages) follow the address it listens on.
        settings.public_url = f"http://{settings.host}:{settings.port}"
    if not args.no_migrate:
        migrate.upgrade(settings.db_url)
    servers: list[uvicorn.Server] = []
    clock = None
    if settings.venice_mode == "sandbox" and not settings.venice_base_url:
        sandbox = build_sandbox(settings)
        clock = sandbox.clock.now
        servers.append(
            uvicorn.Server(
                uvicorn.Config(
                    sandbox.app,
                    host=settings.sandbox_host,
                    port=settings.sandbox_port,
                    log_level=args.log_level,
                    access_log=False,
                    timeout_keep_alive=KEEP_ALIVE_SECONDS,
                )
            )
        )
        log.info(
            "Venice sandbox on http://%s:%s/api/v1", settings.sandbox_host, settings.sandbox_port
        )
    shop = build_shop(settings, clock=clock) if clock else build_shop(settings)
    background = None
    if settings.worker_in_process and not args.no_worker:
        worker = Worker.for_shop(shop)

        def background(stop: threading.Event) -> None:
            worker.run_forever(
                stop, poll=settings.worker_poll_seconds, threads=settings.worker_threads
            )

    app = create_app(shop, background=background)
    if settings.proxies:
        log.info("client addresses from X-Forwarded-For of %s", ", ".join(settings.proxies))
    servers.append(
        uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level=args.log_level,
                timeout_keep_alive=KEEP_ALIVE_SECONDS,
                **forwarding(settings.proxies),
            )
        )
    )

    if settings.metrics_port is not None:
        servers.append(
            uvicorn.Server(
                uvicorn.Config(
                    metrics_app(shop),
                    host=settings.metrics_host,
                    port=settings.metrics_port,
                    log_level=args.log_level,
                    access_log=False,
                    timeout_keep_alive=KEEP_ALIVE_SECONDS,
                )
            )
        )
        log.info("metrics on http://%s:%s/metrics", settings.metrics_host, settings.metrics_port)

    async def main() -> None:
        tasks = [asyncio.create_task(s.serve()) for s in servers]
        await asyncio.sleep(0.5)
        n = await asyncio.to_thread(
            refresh_accounts, db=shop.db, gateways=shop.gateways, clock=shop.clock
        )
        log.info("read %d of %d Venice account balances", n, len(shop.gateways))
        log.info("shop on http://%s:%s/", settings.host, settings.port)
        await asyncio.gather(*tasks)

    # uvicorn.Config (above) has just configured uvicorn's loggers and handlers: redact
    # capabilities (checkout URLs, tokens in queries, keys) from them and the root's.
    logs.install()
    try:
        asyncio.run(main())
    finally:
        shop.close()
    return 0
