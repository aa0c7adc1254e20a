"""Shared helpers of the sub-commands: settings, logging, the shop."""

from __future__ import annotations

import getpass
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from cheaptokens.config import Settings

if TYPE_CHECKING:
    from cheaptokens.shop import Shop

# How long an idle HTTP connection stays open. Longer than the clients' own idle expiry (httpx
# and so the openai SDK: 5 s, aiohttp: 15 s, a load balancer's: 60 s): at uvicorn's default of
# 5 s a client reusing a connection just as the server closes it gets a dropped request.
KEEP_ALIVE_SECONDS = 75


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One line per Venice call is the client's own log; httpx's would repeat it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from cheaptokens.cli import logs

    logs.install()  # secrets are redacted by rule from every record (cheaptokens.cli.logs)


def shell_user() -> str:
    """Who runs the command, for the audit row of an operator action (``cli:<user>``)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return f"uid{os.getuid()}"


@contextmanager
def open_shop() -> Iterator[Shop]:
    """The shop wired from the environment, closed again afterwards."""
    from cheaptokens.shop import build_shop

    shop = build_shop(load_settings())
    try:
        yield shop
    finally:
        shop.close()


def refuse_unsafe_live(settings: Settings) -> int:
    """Print why live mode is refused (to stderr); 0 when the settings are safe to run."""
    problems = settings.live_problems()
    for problem in problems:
        print(f"cheaptokens: refusing to start in live mode: {problem}", file=sys.stderr)
    return 2 if problems else 0


def load_settings(**overrides: object) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
