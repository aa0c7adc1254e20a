"""SIGKILL at every step: a paid order still ends with exactly one live key or a refund.

Real processes: the Venice sandbox, ``cheaptokens worker --once`` and ``cheaptokens serve``
are started as OS processes and killed with SIGKILL by the failpoints in
:mod:`cheaptokens.failpoints` (``CHEAPTOKENS_FAILPOINT``), then restarted without it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from cheaptokens import failpoints
from cheaptokens.config import Settings
from cheaptokens.models import LedgerEntry, Order
from cheaptokens.orders import flows
from cheaptokens.orders.ids import order_token
from cheaptokens.shop import build_shop
from cheaptokens.web.app import create_app
from cheaptokens.worker.watch import watch
from support.agents import agent_client, new_wallet
from support.procs import cheaptokens, free_port, process, run, sandbox, wait_http
from support.shopkit import paid_order as pay
from support.shopkit import refresh, request_refund

TERMINAL = {"fulfilled", "refunded", "failed"}


@pytest.fixture(scope="module")
def venice_url(tmp_path_factory):
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    with sandbox("VENICE_ADMIN_KEY_crash_base_not_real:1", log=log) as url:
        yield url


def new_account(venice_url: str) -> str:
    """A fresh sandbox account per test, so each has its own 20-per-minute budget."""
    admin = f"VENICE_ADMIN_KEY_crash_{uuid.uuid4().hex[:10]}"
    root = venice_url.removesuffix("/api/v1")
    r = httpx.post(f"{root}/_sandbox/accounts", json={"admin_key": admin, "diem": 20})
    assert r.status_code in (200, 201), r.text
    return admin


def shop_env(db_url, tmp_path, venice_url, admin) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "CHEAPTOKENS_DATA_DIR": str(tmp_path),
        "CHEAPTOKENS_VENICE_BASE_URL": venice_url,
        "CHEAPTOKENS_VENICE_ADMIN_KEYS": f"main={admin}",
        "CHEAPTOKENS_JOB_LEASE_SECONDS": "1",
        "CHEAPTOKENS_ORDERS_PER_MINUTE": "1000",
        "CHEAPTOKENS_QUOTES_PER_MINUTE": "1000",
        "CHEAPTOKENS_POOL_SIZE": "0",
    }


def in_process_shop(env):
    return build_shop(
        Settings(
            database_url=env["DATABASE_URL"],
            data_dir=env["CHEAPTOKENS_DATA_DIR"],
            venice_base_url=env["CHEAPTOKENS_VENICE_BASE_URL"],
            venice_admin_keys=env["CHEAPTOKENS_VENICE_ADMIN_KEYS"],
        )
    )


def paid_order(shop) -> str:
    refresh(shop)
    return pay(shop, 300)


def worker_until_settled(env, shop, order_id, *, rounds=30) -> Order:
    for _ in range(rounds):
        r = run(cheaptokens("worker", "--once"), env)
        assert r.returncode == 0, r.stderr[-2000:]
        with shop.db.read() as s:
            order = s.get(Order, order_id)
            if order is not None and order.status in TERMINAL and not pending_jobs(s, order_id):
                return order
        time.sleep(1.1)  # let a dead worker's lease lapse
    raise AssertionError(f"order {order_id} did not settle")


def pending_jobs(session, order_id) -> int:
    from cheaptokens.models import Job

    return int(
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.order_id == order_id, Job.status == "queued")
        )
    )


def venice_keys(venice_url, admin) -> list[dict]:
    r = httpx.get(f"{venice_url}/api_keys", headers={"Authorization": f"Bearer {admin}"})
    return [
        k
        for k in r.json()["data"]
        if k["description"].startswith("cheaptokens:")
        and not k["description"].startswith("cheaptokens:pool:")
    ]


def assert_exactly_one_key_or_refund(shop, venice_url, admin, order_id) -> Order:
    with shop.db.read() as s:
        order = s.get(Order, order_id)
        assert order is not None
        for o in s.scalars(select(Order)):
            # The sandbox holds no shop key without a fulfilled order that owns it.
            mine = [
                k
                for k in venice_keys(venice_url, admin)
                if k["description"] == f"cheaptokens:{o.id}"
            ]
            if o.status == "fulfilled":
                assert [k["id"] for k in mine] == [o.key_id]
            else:
                assert mine == []
    if order.status == "fulfilled":
        key = flows.reveal_key(box=shop.box, order=order)
        chat = httpx.post(
            f"{venice_url}/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert chat.status_code == 200, chat.text
    else:
        assert order.status == "refunded"
    return order


def refunded_through_a_crash(env, shop, venice_url, admin, order_id, point) -> Order:
    """Ask for the refund, SIGKILL a worker at ``point``, let the next worker finish: the order
    ends refunded with no key alive and exactly one refund in the ledger."""
    request_refund(shop, order_id)
    killed = run(cheaptokens("worker", "--once"), {**env, "CHEAPTOKENS_FAILPOINT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    worker_until_settled(env, shop, order_id)
    order = assert_exactly_one_key_or_refund(shop, venice_url, admin, order_id)
    assert order.status == "refunded"
    with shop.db.read() as s:
        refunds = s.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.order_id == order_id, LedgerEntry.kind == "refunded")
        )
    assert refunds == 1
    return order


@pytest.mark.parametrize("point", failpoints.PROVISION_POINTS)
def test_worker_killed_during_provisioning(point, db_url, tmp_path, venice_url):
    admin = new_account(venice_url)
    env = shop_env(db_url, tmp_path, venice_url, admin)
    shop = in_process_shop(env)
    try:
        order_id = paid_order(shop)
        if point == "provision.after_pool_patch":
            env["CHEAPTOKENS_POOL_SIZE"] = "2"  # this step exists only when selling from the pool
        killed = run(cheaptokens("worker", "--once"), {**env, "CHEAPTOKENS_FAILPOINT": point})
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        worker_until_settled(env, shop, order_id)
        order = assert_exactly_one_key_or_refund(shop, venice_url, admin, order_id)
        assert order.status == "fulfilled"
    finally:
        shop.close()


@pytest.mark.parametrize("cause", ["vanished", "reissue"])
@pytest.mark.parametrize("point", failpoints.REPLACE_POINTS)
def test_worker_killed_while_replacing_a_key(point, cause, db_url, tmp_path, venice_url):
    """A key replaced because it vanished from Venice, or because its buyer asked for a new
    one (POST /api/orders/{id}/reissue's own flow): a worker killed at each step still ends
    with exactly one live key, and the old one dead."""
    admin = new_account(venice_url)
    env = shop_env(db_url, tmp_path, venice_url, admin)
    shop = in_process_shop(env)
    try:
        order_id = paid_order(shop)
        worker_until_settled(env, shop, order_id)
        with shop.db.read() as s:
            old = s.get(Order, order_id)
            old_key, old_secret = old.key_id, flows.reveal_key(box=shop.box, order=old)
        if cause == "vanished":
            shop.gateways["main"].delete_key(old_key)  # deleted by hand in Venice
            report = watch(db=shop.db, gateways=shop.gateways, rules=shop.rules, clock=shop.clock)
            assert report.replacing == [order_id]
        else:
            token = order_token(order_id, token_key=shop.box.mac_key)
            flows.reissue(db=shop.db, order_id=order_id, token=token, now=shop.clock())
        killed = run(cheaptokens("worker", "--once"), {**env, "CHEAPTOKENS_FAILPOINT": point})
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        worker_until_settled(env, shop, order_id)
        order = assert_exactly_one_key_or_refund(shop, venice_url, admin, order_id)
        assert order.status == "fulfilled" and order.key_id != old_key
        dead = httpx.post(
            f"{venice_url}/chat/completions",
            headers={"Authorization": f"Bearer {old_secret}"},
            json={"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert dead.status_code == 401
    finally:
        shop.close()


@pytest.mark.parametrize("point", failpoints.REFUND_POINTS)
def test_worker_killed_during_a_refund(point, db_url, tmp_path, venice_url):
    admin = new_account(venice_url)
    env = shop_env(db_url, tmp_path, venice_url, admin)
    shop = in_process_shop(env)
    try:
        order_id = paid_order(shop)
        worker_until_settled(env, shop, order_id)
        order = refunded_through_a_crash(env, shop, venice_url, admin, order_id, point)
        assert order.refund_ref
    finally:
        shop.close()


@pytest.mark.parametrize("point", failpoints.WEB_POINTS)
def test_web_killed_during_checkout_and_payment(point, db_url, tmp_path, venice_url):
    admin = new_account(venice_url)
    env = shop_env(db_url, tmp_path, venice_url, admin)
    port = free_port()
    env["CHEAPTOKENS_PORT"] = str(port)
    env["CHEAPTOKENS_PUBLIC_URL"] = base = f"http://127.0.0.1:{port}"
    serve = cheaptokens("serve", "--no-worker")
    shop = in_process_shop(env)
    refresh(shop)
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    try:
        with process(serve, env={**env, "CHEAPTOKENS_FAILPOINT": point}) as web:
            wait_http(f"{base}/healthz", web)
            try:
                r = httpx.post(
                    f"{base}/api/orders", json={"credit_cents": 300}, headers=headers, timeout=10
                )
                body = r.json()
                httpx.post(body["checkout_url"], json={"outcome": "paid"}, timeout=10)
            except httpx.HTTPError:
                pass  # the server died under us, as it should
            web.wait(timeout=10)
            assert web.returncode == -signal.SIGKILL
        with process(serve, env=env) as web:
            wait_http(f"{base}/healthz", web)
            # The buyer's client retries with the same Idempotency-Key, then pays (again).
            r = httpx.post(f"{base}/api/orders", json={"credit_cents": 300}, headers=headers)
            assert r.status_code == 201, r.text
            body = r.json()
            paid = httpx.post(body["checkout_url"], json={"outcome": "paid"})
            assert paid.status_code == 200, paid.text
            order = worker_until_settled(env, shop, body["order_id"])
            assert order.status == "fulfilled"
        with shop.db.read() as s:
            assert s.scalar(select(func.count()).select_from(Order)) == 1
            payments = s.scalar(
                select(func.count())
                .select_from(LedgerEntry)
                .where(LedgerEntry.kind == "payment_received")
            )
        assert payments == 1
        assert_exactly_one_key_or_refund(shop, venice_url, admin, body["order_id"])
    finally:
        shop.close()


@pytest.mark.parametrize("point", failpoints.REFUND_POINTS)
def test_worker_killed_during_an_x402_refund_pays_the_wallet_once(
    point, db_url, tmp_path, venice_url
):
    """An agent's x402 purchase refunded by a worker SIGKILLed at each step: the USDC goes back
    to the paying wallet once (the refund wallet's nonce is the refund's own)."""
    admin = new_account(venice_url)
    env = shop_env(db_url, tmp_path, venice_url, admin)
    shop = in_process_shop(env)
    wallets = f"{venice_url.removesuffix('/api/v1')}/_sandbox/x402/wallets"
    try:
        refresh(shop)
        wallet = new_wallet()
        assert httpx.post(wallets, json={"address": wallet.address, "usdc": "25.00"}).is_success

        async def buy() -> httpx.Response:
            transport = httpx.ASGITransport(app=create_app(shop))
            async with agent_client(wallet, transport, "http://testserver") as client:
                return await client.post("/api/buy", json={"credit_cents": 300})

        r = asyncio.run(buy())
        assert r.status_code in (200, 202), r.text
        order_id = r.json()["order_id"]
        worker_until_settled(env, shop, order_id)
        before = Decimal(httpx.get(f"{wallets}/{wallet.address}").json()["usdc"])
        order = refunded_through_a_crash(env, shop, venice_url, admin, order_id, point)
        assert order.refund_ref and order.paid_cents
        after = Decimal(httpx.get(f"{wallets}/{wallet.address}").json()["usdc"])
        assert after - before == Decimal(order.paid_cents) / 100
    finally:
        shop.close()
