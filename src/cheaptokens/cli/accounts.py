"""``cheaptokens accounts``: the Venice accounts the shop sells from."""

from __future__ import annotations

import argparse
from typing import Any

from cheaptokens.cli._common import open_shop


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "accounts",
        help="list or refresh the Venice accounts",
        description="Accounts are configured by CHEAPTOKENS_VENICE_ADMIN_KEYS (name=KEY,...).",
    )
    sub = p.add_subparsers(dest="accounts_command", metavar="ACTION", required=True)
    ls = sub.add_parser(
        "list",
        help="accounts with today's capacity, sold and reserved",
        description="List accounts (no keys are printed).",
    )
    ls.set_defaults(func=_list)
    rf = sub.add_parser(
        "refresh",
        help="read each account's DIEM allocation from Venice",
        description="Call GET /billing/balance for every configured account.",
    )
    rf.set_defaults(func=_refresh)


def _list(_args: argparse.Namespace) -> int:
    from cheaptokens.money import format_usd
    from cheaptokens.orders import flows

    with open_shop() as shop:
        rows = flows.accounts_today(db=shop.db, rules=shop.rules, now=shop.clock())
        print(f"{'account':20} {'allocation':>12} {'capacity':>12} {'sold':>12} {'reserved':>12}")
        for r in rows:
            print(
                f"{r.name:20} {format_usd(r.allocation_cents):>12} "
                f"{format_usd(r.capacity_cents):>12} {format_usd(r.sold_cents):>12} "
                f"{format_usd(r.reserved_cents):>12}"
            )
        if not rows:
            print("(no accounts yet: run 'cheaptokens accounts refresh')")
    return 0


def _refresh(_args: argparse.Namespace) -> int:
    from cheaptokens.worker.maintenance import refresh_accounts

    with open_shop() as shop:
        n = refresh_accounts(db=shop.db, gateways=shop.gateways, clock=shop.clock)
        print(f"{n} of {len(shop.gateways)} accounts answered")
        return 0 if n == len(shop.gateways) else 1
