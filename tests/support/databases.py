"""Fresh databases for tests: a SQLite file, or a throw-away PostgreSQL database.

PostgreSQL is the server ``scripts/services.sh`` starts (``CHEAPTOKENS_TEST_PG``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``); each call makes a new
database and drops it afterwards.
"""

from __future__ import annotations

import os
import pathlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

from cheaptokens import migrate

PG_ADMIN_URL = os.environ.get(
    "CHEAPTOKENS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def postgres_database(*, migrated: bool = True) -> Iterator[str]:
    name = f"ct_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        if migrated:
            migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def sqlite_database(tmp_path: pathlib.Path, *, migrated: bool = True) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / f'shop-{uuid.uuid4().hex[:6]}.db'}"
    if migrated:
        migrate.upgrade(url)
    yield url


@contextmanager
def database(kind: str, tmp_path: pathlib.Path, *, migrated: bool = True) -> Iterator[str]:
    if kind == "postgres":
        with postgres_database(migrated=migrated) as url:
            yield url
    else:
        with sqlite_database(tmp_path, migrated=migrated) as url:
            yield url
