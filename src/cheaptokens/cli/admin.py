"""``cheaptokens admin``: the operator's credentials.

``cheaptokens admin hash-password`` reads a password (twice from a terminal, or one line
from standard input) and prints the hash to put in ``CHEAPTOKENS_ADMIN_PASSWORD``, so the
setting never holds the password itself. The password is never echoed or printed.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "admin",
        help="the operator dashboard's credentials",
        description="Tools for the operator dashboard's login (docs/operations.md).",
    )
    sub = p.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    hp = sub.add_parser(
        "hash-password",
        help="print a hash of a password for CHEAPTOKENS_ADMIN_PASSWORD",
        description="Read a password (asked twice on a terminal, or the first line of "
        "standard input) and print its hash: $argon2id$… (default) or scrypt:…. Put the "
        "hash in CHEAPTOKENS_ADMIN_PASSWORD; restarting the shop with it ends every "
        "operator session.",
    )
    hp.add_argument(
        "--scheme",
        choices=("argon2", "scrypt"),
        default="argon2",
        help="argon2 (Argon2id, the default) or scrypt",
    )
    hp.set_defaults(func=_hash_password)


def _hash_password(args: argparse.Namespace) -> int:
    from cheaptokens import passwords

    if sys.stdin.isatty():
        password = getpass.getpass("Operator password: ")
        if getpass.getpass("Again: ") != password:
            print("cheaptokens: the two passwords differ; nothing printed", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        print(
            "cheaptokens: use a password of at least 12 characters (a long random one: "
            "the dashboard can refund orders)",
            file=sys.stderr,
        )
        return 1
    print(passwords.hash_password(password, scheme=args.scheme))
    return 0
