"""``cheaptokens worker``: run jobs (provisioning, refunds) and upkeep, without the web."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from cheaptokens.cli._common import load_settings, refuse_unsafe_live, setup_logging


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "worker",
        help="run the provisioning and upkeep worker",
        description="Claim jobs from the shared database (FOR UPDATE SKIP LOCKED on PostgreSQL) "
        "and run upkeep: balances, usage, midnight expiry, reconciliation. Run as many as you "
        "like against one database.",
    )
    p.add_argument("--once", action="store_true", help="run due jobs and upkeep once, then exit")
    p.add_argument("--log-level", default="info", help="info, debug, warning (info)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cheaptokens.shop import build_shop
    from cheaptokens.worker.runner import Worker

    setup_logging(args.log_level)
    settings = load_settings()
    if refused := refuse_unsafe_live(settings):
        return refused
    shop = build_shop(settings)
    worker = Worker.for_shop(shop)
    try:
        if args.once:
            worker.upkeep(force=True)
            worker.drain()
            return 0
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        worker.run_forever(stop, poll=settings.worker_poll_seconds, threads=settings.worker_threads)
    finally:
        shop.close()
    return 0
