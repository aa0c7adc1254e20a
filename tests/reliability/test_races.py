"""Four OS processes of the shop (2 web, 2 workers) on PostgreSQL and 200 concurrent buyers
racing for the last few dollars: never a cent oversold, every buyer gets an order or a
clear sold-out answer, and the two workers never run the same job twice."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select

from cheaptokens.models import AccountDay, LedgerEntry, Order
from support.procs import cheaptokens, free_port, process, run, sandbox, wait_http

BUYERS = 200
ADMIN = "VENICE_ADMIN_KEY_race_not_real"


async def buyer(client: httpx.AsyncClient, base: str, i: int) -> str:
    r = await client.post(
        f"{base}/api/orders",
        json={"credit_cents": 100},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    if r.status_code == 409:
        # Sold out, or what is left held by other buyers' checkouts not paid yet.
        assert r.json()["error"]["code"] in ("sold_out", "held_out"), r.text
        return "sold_out"
    assert r.status_code == 201, r.text
    paid = await client.post(r.json()["checkout_url"], json={"outcome": "paid"})
    assert paid.status_code == 200, paid.text
    return "bought"


async def crowd(bases: list[str]) -> Counter[str]:
    limits = httpx.Limits(max_connections=BUYERS)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        results = await asyncio.gather(
            *(buyer(client, bases[i % len(bases)], i) for i in range(BUYERS))
        )
    return Counter(results)


@pytest.mark.postgres
@pytest.mark.slow
def test_two_webs_two_workers_two_hundred_buyers(pg_url, tmp_path):
    with sandbox(f"{ADMIN}:10", log=tmp_path / "sandbox.log") as venice:
        ports = [free_port(), free_port()]
        env = {
            **os.environ,
            "DATABASE_URL": pg_url,
            "CHEAPTOKENS_DATA_DIR": str(tmp_path),
            "CHEAPTOKENS_VENICE_BASE_URL": venice,
            "CHEAPTOKENS_VENICE_ADMIN_KEYS": f"main={ADMIN}",
            "CHEAPTOKENS_ORDERS_PER_MINUTE": "100000",
            "CHEAPTOKENS_QUOTES_PER_MINUTE": "100000",
            # 200 buyers from one address, on a 10-DIEM account: no per-address hold share, no
            # overshoot reserve (both have tests of their own)
            "CHEAPTOKENS_MAX_HELD_SHARE": "1",
            "CHEAPTOKENS_OVERSHOOT_RESERVE_CENTS": "0",
        }
        assert run(cheaptokens("accounts", "refresh"), env).returncode == 0
        web = [
            process(
                cheaptokens(
                    "serve",
                    "--no-worker",
                    "--no-migrate",
                    "--port",
                    str(p),
                    "--log-level",
                    "warning",
                ),
                env={**env, "CHEAPTOKENS_PUBLIC_URL": f"http://127.0.0.1:{p}"},
                log=tmp_path / f"web-{p}.log",
            )
            for p in ports
        ]
        workers = [
            process(
                cheaptokens("worker", "--log-level", "warning"),
                env=env,
                log=tmp_path / f"worker-{i}.log",
            )
            for i in range(2)
        ]
        with web[0] as w0, web[1] as w1, workers[0], workers[1]:
            bases = [f"http://127.0.0.1:{p}" for p in ports]
            wait_http(f"{bases[0]}/healthz", w0)
            wait_http(f"{bases[1]}/healthz", w1)
            capacity = httpx.get(f"{bases[0]}/api/supply").json()["capacity_cents"]
            assert capacity == 800  # 10 DIEM × 0.9 − $1 margin

            outcome = asyncio.run(crowd(bases))
            assert outcome == Counter({"bought": 8, "sold_out": 192})  # 409 either way

            from sqlalchemy import create_engine

            engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with engine.connect() as c:
                    statuses = Counter(c.execute(select(Order.status)).scalars())
                if statuses == Counter({"fulfilled": 8}):
                    break
                time.sleep(0.5)
            assert statuses == Counter({"fulfilled": 8})
            with engine.connect() as c:
                day = c.execute(select(AccountDay)).one()
                assert day.sold_cents + day.reserved_cents <= day.capacity_cents
                assert day.sold_cents == 800
                # Each order got its key once: one creation, or one key claimed from the pool.
                attempts = c.execute(
                    select(LedgerEntry.order_id, func.count())
                    .where(
                        LedgerEntry.kind.in_(["key_create_attempt", "pool_key_claimed"]),
                        LedgerEntry.order_id.is_not(None),
                    )
                    .group_by(LedgerEntry.order_id)
                ).all()
                assert len(attempts) == 8 and all(n == 1 for _, n in attempts)
                key_ids = set(c.execute(select(Order.key_id)).scalars())
            engine.dispose()
            keys = httpx.get(
                f"{venice}/api_keys", headers={"Authorization": f"Bearer {ADMIN}"}
            ).json()["data"]
            shop_keys = {
                k["id"]
                for k in keys
                if k["description"].startswith("cheaptokens:")
                and not k["description"].startswith("cheaptokens:pool:")
            }
            assert shop_keys == key_ids
