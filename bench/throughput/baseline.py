"""The database's own limit for a quote and an order: their SQL through the bare driver.

:func:`capture` runs one real ``POST /api/quotes`` and one ``POST /api/orders`` through the
shop's app (in this process, against the benchmark's database) and records every statement
the driver receives, with its parameters (SQLAlchemy's ``before_cursor_execute`` event).
:func:`replay` then runs those statements through ``sqlite3`` or ``psycopg`` directly, in
``procs`` processes for ``seconds``, one transaction per quote (or order) as the shop does,
on one connection and on several at once (the better of the two is the baseline): what the
database can do with the same work and no Python web stack in front of it.

Each replay gives the quote and order ids it inserts fresh values, so unique keys hold; every
other parameter (times, amounts, the conditional capacity ``UPDATE``) is the captured one.
"""

from __future__ import annotations

import multiprocessing
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event

#: ids the shop makes per request (unique in their tables)
FRESH = re.compile(r"^(q|ord)_[0-9a-f]{32}$")


@dataclass
class Captured:
    url: str
    #: each request's statements, in order: (SQL, parameters)
    quote: list[tuple[str, Any]]
    order: list[tuple[str, Any]]


def capture(shop: Any, app: Any) -> Captured:
    """The statements of one quote and one order (after a warm-up of each)."""
    from starlette.testclient import TestClient

    engines = {s.kw["bind"] for s in (shop.db.writes, shop.db.reads)}
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_a: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA")):
            seen.append((statement, params))

    out: dict[str, list[tuple[str, Any]]] = {}
    with TestClient(app) as web:
        for name, path in (("quote", "/api/quotes"), ("order", "/api/orders")):
            web.post(path, json={"credit_cents": 100}).raise_for_status()  # warm-up
            for engine in engines:
                event.listen(engine, "before_cursor_execute", record)
            try:
                web.post(path, json={"credit_cents": 100}).raise_for_status()
            finally:
                for engine in engines:
                    event.remove(engine, "before_cursor_execute", record)
            out[name] = list(seen)
            seen.clear()
    return Captured(url=shop.settings.database_url, quote=out["quote"], order=out["order"])


def _fresh(params: Any, ids: dict[str, str]) -> Any:
    def one(v: Any) -> Any:
        if isinstance(v, str) and FRESH.match(v):
            if v not in ids:
                ids[v] = v.split("_", 1)[0] + "_" + uuid.uuid4().hex
            return ids[v]
        return v

    if isinstance(params, dict):
        return {k: one(v) for k, v in params.items()}
    if isinstance(params, list | tuple):
        return type(params)(one(v) for v in params)
    return params


def _connect(url: str) -> tuple[Any, str]:
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None, timeout=30)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            conn.execute(f"PRAGMA {pragma}")
        return conn, "sqlite"
    import psycopg

    dsn = re.sub(r"^postgresql(\+psycopg)?://", "postgresql://", url)
    return psycopg.connect(dsn), "postgres"


def _one_connection(url: str, statements: list[tuple[str, Any]], end: float) -> int:
    conn, kind = _connect(url)
    done = 0
    while time.perf_counter() < end:
        ids: dict[str, str] = {}
        if kind == "sqlite":
            conn.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                conn.execute(sql, _fresh(params, ids)).fetchall()
            conn.execute("COMMIT")
        else:
            with conn.cursor() as cur:
                for sql, params in statements:
                    cur.execute(sql, _fresh(params, ids))
                    if cur.description is not None:
                        cur.fetchall()
            conn.commit()
        done += 1
    conn.close()
    return done


def _worker(
    url: str, statements: list[tuple[str, Any]], seconds: float, connections: int, q: Any
) -> None:
    """One process: ``connections`` threads, each with its connection (the drivers release
    the GIL while the database works, as the shop's thread pool does)."""
    end = time.perf_counter() + seconds
    with ThreadPoolExecutor(connections) as pool:
        counts = [pool.submit(_one_connection, url, statements, end) for _ in range(connections)]
        q.put(sum(c.result() for c in counts))


def replay(
    url: str,
    statements: list[tuple[str, Any]],
    *,
    procs: int,
    seconds: float,
    connections: int = 1,
) -> float:
    """Transactions a second: ``statements`` as one transaction, over and over, on
    ``connections`` connections in each of ``procs`` processes at once."""
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(url, statements, seconds, connections, q))
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    total = sum(q.get() for _ in workers)
    for w in workers:
        w.join()
    return total / seconds
