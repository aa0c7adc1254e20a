"""``cheaptokens orders``: list, show and refund orders (never prints a key or token)."""

from __future__ import annotations

import argparse
from typing import Any

from cheaptokens.cli._common import open_shop, shell_user


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "orders",
        help="list, show or refund orders",
        description="Operator view of orders; keys and tokens are never printed.",
    )
    sub = p.add_subparsers(dest="orders_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="recent orders", description="List recent orders.")
    ls.add_argument("--status", help="only this status (e.g. paid, fulfilled, refunded)")
    ls.add_argument("--limit", type=int, default=50, help="how many (50)")
    ls.set_defaults(func=_list)
    sh = sub.add_parser("show", help="one order with its ledger", description="Show one order.")
    sh.add_argument("order_id")
    sh.set_defaults(func=_show)
    rf = sub.add_parser(
        "refund",
        help="refund an order (deletes its key first)",
        description="Queue a refund; a running worker carries it out. The dashboard's audit "
        "log records it, naming cli:<your system user>.",
    )
    rf.add_argument("order_id")
    rf.add_argument("--reason", default="operator refund", help="recorded in the ledger")
    rf.set_defaults(func=_refund)


def _list(args: argparse.Namespace) -> int:
    from cheaptokens.money import format_usd
    from cheaptokens.orders import flows

    with open_shop() as shop:
        for o in flows.list_orders(db=shop.db, status=args.status, limit=args.limit):
            print(
                f"{o.id}  {o.status:17} credit {format_usd(o.credit_cents):>9}  "
                f"paid {format_usd(o.price_cents):>9}  {o.created_at:%Y-%m-%d %H:%M:%S}Z  "
                f"{o.account}  key …{o.key_last6 or '------'}"
            )
    return 0


def _show(args: argparse.Namespace) -> int:
    from cheaptokens.orders import flows

    with open_shop() as shop:
        detail = flows.order_detail(db=shop.db, order_id=args.order_id)
        if detail is None:
            print(f"no order {args.order_id}")
            return 1
        o = detail.order
        for name in (
            "id",
            "status",
            "day",
            "account",
            "credit_cents",
            "price_cents",
            "created_at",
            "paid_at",
            "fulfilled_at",
            "key_id",
            "key_last6",
            "key_expires_at",
            "used_cents",
            "refunded_at",
            "failure_reason",
        ):
            print(f"{name:16} {getattr(o, name)}")
        print("ledger:")
        for e in detail.ledger:
            print(
                f"  {e.at:%H:%M:%S} {e.kind:20} credit {e.credit_cents:+} money {e.money_cents:+}"
            )
    return 0


def _refund(args: argparse.Namespace) -> int:
    from cheaptokens import operators
    from cheaptokens.errors import ShopError
    from cheaptokens.orders import flows

    with open_shop() as shop:
        try:
            now = shop.clock()
            with operators.audited(
                shop.db,
                user=shell_user(),
                action="refund",
                target=args.order_id,
                detail={"reason": args.reason},
                now=now,
            ) as db:
                flows.refund_order(db=db, order_id=args.order_id, reason=args.reason, now=now)
        except ShopError as exc:
            print(f"{args.order_id}: {exc.message}")
            return 1
        print(f"refund queued for {args.order_id}; a worker carries it out")
    return 0
