"""The ``cheaptokens`` command line.

Each sub-command lives in its own module of this package and exposes
``register(subparsers) -> None``; the module sets ``func`` on its parser with
``set_defaults(func=...)``. ``func(args) -> int`` is the exit status.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

#: Sub-command modules, in the order ``--help`` lists them.
COMMANDS = ("serve", "worker", "sandbox", "db", "accounts", "orders", "pricing", "admin")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cheaptokens",
        description="Sell discounted, same-day Venice.ai API credit as real Venice keys.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"cheaptokens.cli.{name}")
        except ModuleNotFoundError as exc:  # a command not built yet
            if exc.name != f"cheaptokens.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
