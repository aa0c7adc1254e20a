"""``cheaptokens db``: schema migrations, backup and restore."""

from __future__ import annotations

import argparse
import pathlib
import sqlite3
from typing import Any

from cheaptokens.cli._common import load_settings


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "db",
        help="migrate, back up or restore the database",
        description="Database commands; the URL comes from CHEAPTOKENS_DATABASE_URL "
        "(default: SQLite under CHEAPTOKENS_DATA_DIR).",
    )
    sub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = sub.add_parser(
        "upgrade",
        help="apply migrations (to head, or to --revision)",
        description="Apply Alembic migrations.",
    )
    up.add_argument("--revision", default="head", help="target revision (head)")
    up.set_defaults(func=_upgrade)
    down = sub.add_parser(
        "downgrade",
        help="revert migrations to --revision",
        description="Revert Alembic migrations.",
    )
    down.add_argument("--revision", required=True, help="target revision, e.g. base or 0001")
    down.set_defaults(func=_downgrade)
    cur = sub.add_parser(
        "current",
        help="print the current revision",
        description="Print the database's current Alembic revision.",
    )
    cur.set_defaults(func=_current)
    bk = sub.add_parser(
        "backup",
        help="copy a consistent SQLite snapshot to FILE",
        description="Online backup of the SQLite database (WAL-safe, uses "
        "SQLite's backup API). For PostgreSQL use pg_dump.",
    )
    bk.add_argument("file", type=pathlib.Path)
    bk.set_defaults(func=_backup)
    rs = sub.add_parser(
        "restore",
        help="replace the SQLite database with FILE (shop stopped)",
        description="Restore a snapshot made by 'db backup'. Stop the shop first.",
    )
    rs.add_argument("file", type=pathlib.Path)
    rs.set_defaults(func=_restore)
    pr = sub.add_parser(
        "prune",
        help="forget what the retention settings say is of no more use",
        description="Delete lapsed quotes, applied provider webhook events, finished jobs, "
        "spent pool keys, old alerts and ended operator sessions older than their "
        "CHEAPTOKENS_RETAIN_*_DAYS; orders, top-ups, the ledger and price sets stay. Workers "
        "do it every night too.",
    )
    pr.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
    pr.set_defaults(func=_prune)


def _upgrade(args: argparse.Namespace) -> int:
    from cheaptokens import migrate

    migrate.upgrade(load_settings().db_url, args.revision)
    return 0


def _downgrade(args: argparse.Namespace) -> int:
    from cheaptokens import migrate

    migrate.downgrade(load_settings().db_url, args.revision)
    return 0


def _current(_args: argparse.Namespace) -> int:
    from cheaptokens import migrate

    print(migrate.current(load_settings().db_url) or "(empty)")
    return 0


def _sqlite_path() -> pathlib.Path:
    url = load_settings().db_url
    if not url.startswith("sqlite:///"):
        raise SystemExit("backup/restore handle SQLite; for PostgreSQL use pg_dump/pg_restore")
    return pathlib.Path(url.removeprefix("sqlite:///"))


def _copy(src: pathlib.Path, dst: pathlib.Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(src) as source, sqlite3.connect(dst) as target:
        source.backup(target)


def _backup(args: argparse.Namespace) -> int:
    _copy(_sqlite_path(), args.file)
    print(f"backed up to {args.file}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    if not args.file.exists():
        raise SystemExit(f"no such file: {args.file}")
    _copy(args.file, _sqlite_path())
    print(f"restored from {args.file}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    from cheaptokens.cli._common import open_shop
    from cheaptokens.orders import flows

    with open_shop() as shop:
        gone = flows.prune(
            db=shop.db,
            policy=flows.retention_of(shop.settings),
            now=shop.clock(),
            dry_run=args.dry_run,
        )
    verb = "would forget" if args.dry_run else "forgot"
    for table, n in gone.items():
        print(f"{table:16} {verb} {n}")
    return 0
