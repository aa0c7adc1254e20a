"""Engine and sessions: SQLite (WAL) by default, PostgreSQL through ``DATABASE_URL``.

The schema itself is in :mod:`cheaptokens.models` and is created by the Alembic
migrations under ``cheaptokens/migrations`` (``cheaptokens db upgrade``).
"""

from __future__ import annotations

import dataclasses
import pathlib
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, *, readonly: bool = False, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and immediate write locks.

    ``readonly`` (SQLite): transactions begin DEFERRED, so readers never queue behind
    writers (WAL lets them read a consistent snapshot meanwhile).
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        _configure_sqlite(engine, immediate=not readonly)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # Up to 30 connections, all kept once opened: with overflow connections beyond a smaller
    # pool, upkeep's fifty account threads opened and closed twenty of them on every round.
    return create_engine(url, pool_pre_ping=True, pool_size=30, max_overflow=0, **kwargs)


def _configure_sqlite(engine: Engine, *, immediate: bool = True) -> None:
    # pysqlite's own transaction handling defers BEGIN; take over so that every
    # transaction starts with BEGIN IMMEDIATE: writers queue on the busy timeout
    # instead of failing on a read-to-write lock upgrade.
    # https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@dataclass(frozen=True, slots=True)
class Database:
    """The shop's database: ``begin()`` for a unit of work, ``read()`` for a look.

    On SQLite the two use separate engines: writers take the write lock when they begin
    (``BEGIN IMMEDIATE``), readers never wait for it (WAL). On PostgreSQL both are one.
    """

    writes: sessionmaker[Session]
    reads: sessionmaker[Session]
    #: SQLite: this process's writers queue here, one at a time, rather than in SQLite's busy
    #: handler, which sleeps up to 100 ms between tries (50 worker threads lost seconds to
    #: it: bench/accounts). Other processes still meet on SQLite's lock and busy timeout.
    #: On PostgreSQL only the many-thread upkeep tasks queue so (:meth:`one_writer`).
    write_lock: threading.RLock | None = None

    def begin(self) -> AbstractContextManager[Session]:
        """A transaction: commits when the block ends, rolls back if it raises."""
        if self.write_lock is None:
            return self.writes.begin()
        return _one_writer(self.write_lock, self.writes)

    def read(self) -> Session:
        """A session for reading (``with db.read() as session: ...``); never commits."""
        return self.reads()

    def one_writer(self) -> Database:
        """This database with its writers one at a time (SQLite has that already): for many
        threads of one task, whose transactions then cost less CPU than when they contend for
        the GIL and the connections all at once (bench/accounts)."""
        if self.write_lock is not None:
            return self
        return dataclasses.replace(self, write_lock=threading.RLock())


def open_database(url: str) -> tuple[Database, list[Engine]]:
    """The :class:`Database` for ``url`` and the engines to dispose of at shutdown."""
    engine = make_engine(url)
    engines = [engine]
    reads = make_sessionmaker(engine)
    if url.startswith("sqlite"):
        read_engine = make_engine(url, readonly=True)
        engines.append(read_engine)
        reads = make_sessionmaker(read_engine)
    lock = threading.RLock() if url.startswith("sqlite") else None
    return Database(writes=make_sessionmaker(engine), reads=reads, write_lock=lock), engines


@contextmanager
def _one_writer(lock: threading.RLock, writes: sessionmaker[Session]) -> Iterator[Session]:
    with lock, writes.begin() as session:
        yield session


def dialect_name(session: Session) -> str:
    return session.get_bind().dialect.name


def upsert_insert(session: Session) -> Any:
    """The dialect's ``insert`` (with ``on_conflict_do_*``) for this session's database."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql if dialect_name(session) == "postgresql" else sqlite).insert
