"""Shared helpers of the sub-commands: settings, logging, the shop."""

from __future__ import annotations

import logging

from cheaptokens.config import Settings


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One line per Venice call is the client's own log; httpx's would repeat it.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def load_settings(**overrides: object) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
