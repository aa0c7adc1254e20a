"""Top-ups paid with x402: the SDK's httpx client raises the same key's cap in one call; every
wrong, replayed, raced or misdirected payment gets a clear 402 and changes nothing; a payment
that does not settle after the cap was raised leaves the cap as it was."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from cheaptokens.models import LedgerEntry, Order, Topup
from support.agents import agent_client, agent_post, balance, fund, new_wallet, required_of, sign
from support.shopkit import Kit, make_kit

from .conftest import money_in


def auth(order: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {order['order_token']}"}


def path(order: dict[str, Any]) -> str:
    return f"/api/orders/{order['order_id']}/topups"


def agent_topup(kit: Kit, wallet: LocalAccount, order: dict[str, Any], cents: int) -> Any:
    """The SDK's client tops up: 402, sign, the same request again — by itself."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=kit.web.app)
        async with agent_client(wallet, transport, "http://testserver") as http:
            return await http.post(path(order), json={"credit_cents": cents}, headers=auth(order))

    return asyncio.run(go())


def offer(kit: Kit, order: dict[str, Any], cents: int = 300, **body: Any) -> dict[str, Any]:
    r = kit.web.post(path(order), json={"credit_cents": cents, **body}, headers=auth(order))
    assert r.status_code == 402, r.text
    assert r.json()["accepts"] == required_of(r)["accepts"]
    return dict(required_of(r)["accepts"][0])


def pay(kit: Kit, order: dict[str, Any], header: str, cents: int = 300) -> Any:
    return kit.web.post(
        path(order),
        json={"credit_cents": cents},
        headers={**auth(order), "PAYMENT-SIGNATURE": header},
    )


def venice_cap(kit: Kit, order: dict[str, Any]) -> Decimal:
    with kit.shop.db.read() as s:
        o = s.get(Order, order["order_id"])
        key_id, account = o.key_id, o.account
    (key,) = [k for k in kit.shop.gateways[account].list_keys() if k.id == key_id]
    assert key.consumption_limits.diem is not None
    return key.consumption_limits.diem


def statuses(kit: Kit) -> list[str]:
    with kit.shop.db.read() as s:
        return sorted(s.scalars(select(Topup.status)).all())


@pytest.fixture
def kit(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url) as k:
        yield k


@pytest.fixture
def wallet(kit):
    w = new_wallet()
    fund(kit.sandbox, w.address, "25.00")
    return w


@pytest.fixture
def bought(kit, wallet) -> dict[str, Any]:
    """An order of 500 ¢ bought with x402 by ``wallet``."""
    r = agent_post(kit, wallet, "/api/buy", {"credit_cents": 500})
    assert r.status_code == 200, r.text
    return dict(r.json())


def unchanged(kit: Kit, order: dict[str, Any], wallet: LocalAccount, usdc: Decimal) -> None:
    """The key's cap, the wallet, the money in and the stock sold are as before the top-up."""
    assert venice_cap(kit, order) == Decimal("5.00")
    assert kit.status(order)["key"]["credit_cents"] == 500
    assert balance(kit.sandbox, wallet.address) == usdc
    assert money_in(kit) == order["price_cents"]
    assert kit.web.get("/api/supply").json()["sold_cents"] == 500
    assert "applied" not in statuses(kit)


def test_an_agent_tops_up_the_same_key_in_one_call(kit, wallet, bought):
    before = balance(kit.sandbox, wallet.address)
    r = agent_topup(kit, wallet, bought, 300)
    assert r.status_code == 200, r.text
    topup = r.json()
    assert topup["status"] == "applied" and topup["credit_cents"] == 300
    assert topup["key_credit_cents"] == 800 and "PAYMENT-RESPONSE" in r.headers
    assert balance(kit.sandbox, wallet.address) == before - Decimal(topup["price_cents"]) / 100
    assert venice_cap(kit, bought) == Decimal("8.00")
    status = kit.status(bought)
    assert status["key"]["api_key"] == bought["key"]["api_key"]  # the same key
    assert status["total_credit_cents"] == 800 and status["key"]["credit_cents"] == 800
    [shown] = status["topups"]
    assert shown["status"] == "applied" and shown["topup_id"] == topup["topup_id"]
    supply = kit.web.get("/api/supply").json()
    assert supply["sold_cents"] == 800 and supply["reserved_cents"] == 0
    assert money_in(kit) == bought["price_cents"] + topup["price_cents"]
    with kit.shop.db.read() as s:
        kinds = s.scalars(
            select(LedgerEntry.kind).where(LedgerEntry.order_id == bought["order_id"])
        ).all()
    assert {
        "topup_placed",
        "payment_authorized",
        "credit_sold",
        "topup_claimed",
        "payment_received",
        "topup_applied",
    } <= set(kinds)
    ai = openai.OpenAI(
        api_key=bought["key"]["api_key"],
        base_url=bought["key"]["base_url"],
        http_client=kit.venice_http,
    )
    chat = ai.chat.completions.create(
        model="llama-3.3-70b", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.usage is not None and chat.usage.completion_tokens > 0


def test_the_first_call_reserves_on_the_keys_account_at_the_quoted_price(kit, bought):
    req = offer(kit, bought)
    quote = kit.web.post("/api/quotes", json={"credit_cents": 300}).json()
    assert int(req["amount"]) == quote["price_cents"] * 10_000
    assert req["extra"]["order_id"] == bought["order_id"]
    assert req["extra"]["topup_id"].startswith("top_") and req["extra"]["credit_cents"] == 300
    assert kit.web.get("/api/supply").json()["reserved_cents"] == 600  # the offer and the quote
    assert statuses(kit) == ["awaiting_payment"]


def test_a_card_order_tops_up_with_x402_when_asked(kit, wallet):
    order = kit.buy(500)
    kit.worker.drain()
    plain = kit.web.post(path(order), json={"credit_cents": 300}, headers=auth(order))
    assert plain.status_code == 201 and plain.json()["checkout_url"]  # a card order: checkout
    req = offer(kit, order, payment="x402")
    r = pay(kit, order, sign(wallet, req))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "applied" and venice_cap(kit, order) == Decimal("8.00")


def test_an_x402_order_can_still_ask_for_a_checkout(kit, bought):
    r = kit.web.post(
        path(bought), json={"credit_cents": 300, "payment": "checkout"}, headers=auth(bought)
    )
    assert r.status_code == 201 and r.json()["checkout_url"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("short", "value_mismatch"),
        ("expired", "valid_before"),
        ("network", "invalid_network"),
        ("accepted_amount", "payment_mismatch"),
        ("underfunded", "insufficient_balance"),
    ],
)
def test_a_wrong_payment_gets_a_clear_402_and_changes_nothing(kit, wallet, bought, change, reason):
    usdc = balance(kit.sandbox, wallet.address)
    req = offer(kit, bought)
    payer = wallet
    if change == "short":
        header = sign(wallet, req, value=int(req["amount"]) - 1)
    elif change == "expired":
        header = sign(wallet, req, valid_before=int(time.time()) - 10)
    elif change == "network":
        header = sign(wallet, req, accepted={**req, "network": "eip155:8453"})
    elif change == "accepted_amount":
        less = str(int(req["amount"]) - 10_000)
        header = sign(wallet, req, value=int(less), accepted={**req, "amount": less})
    else:
        payer = new_wallet()
        fund(kit.sandbox, payer.address, "0.01")
        header = sign(payer, req)
    r = pay(kit, bought, header)
    assert r.status_code == 402, r.text
    assert reason in r.json()["reason"], r.json()
    assert r.json()["accepts"], "a refused payment is offered the requirements again"
    unchanged(kit, bought, wallet, usdc)
    if payer is not wallet:
        assert balance(kit.sandbox, payer.address) == Decimal("0.01")


def test_a_replayed_payment_never_raises_the_cap_twice(kit, wallet, bought):
    header = sign(wallet, offer(kit, bought))
    first = pay(kit, bought, header)
    assert first.status_code == 200, first.text
    after = balance(kit.sandbox, wallet.address)
    for cents in (300, 200):
        again = pay(kit, bought, header, cents)
        assert again.status_code == 402
        assert again.json()["reason"] in ("payment_replayed", "price_changed", "payment_mismatch")
    assert venice_cap(kit, bought) == Decimal("8.00")
    assert balance(kit.sandbox, wallet.address) == after
    assert statuses(kit).count("applied") == 1


def test_the_purchase_authorization_cannot_pay_a_top_up(kit, wallet):
    r = kit.web.post("/api/buy", json={"credit_cents": 500})
    header = sign(wallet, dict(required_of(r)["accepts"][0]))
    order = kit.web.post(
        "/api/buy", json={"credit_cents": 500}, headers={"PAYMENT-SIGNATURE": header}
    ).json()
    again = pay(kit, order, header, 500)
    assert again.status_code == 402 and again.json()["reason"] == "payment_mismatch"
    assert venice_cap(kit, order) == Decimal("5.00")


def test_the_same_authorization_raced_raises_the_cap_once(kit, wallet, bought):
    header = sign(wallet, offer(kit, bought))
    usdc = balance(kit.sandbox, wallet.address)
    answers: list[int] = []
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        answers.append(pay(kit, bought, header).status_code)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200, 402, 402, 402]
    assert venice_cap(kit, bought) == Decimal("8.00")
    assert statuses(kit).count("applied") == 1
    assert balance(kit.sandbox, wallet.address) < usdc
    [applied] = [t for t in kit.status(bought)["topups"] if t["status"] == "applied"]
    assert money_in(kit) == bought["price_cents"] + applied["price_cents"]


def test_a_payment_for_another_orders_top_up_is_refused(kit, wallet, bought):
    other_wallet = new_wallet()
    fund(kit.sandbox, other_wallet.address, "25.00")
    other = agent_post(kit, other_wallet, "/api/buy", {"credit_cents": 500}).json()
    # The wallet signs for its own order's top-up; the header is sent for the other order.
    header = sign(wallet, offer(kit, bought))
    usdc = balance(kit.sandbox, wallet.address)
    r = pay(kit, other, header)
    assert r.status_code == 402 and r.json()["reason"] == "payment_mismatch"
    assert r.json()["accepts"][0]["extra"]["order_id"] == other["order_id"]
    assert venice_cap(kit, other) == Decimal("5.00")
    assert balance(kit.sandbox, wallet.address) == usdc
    # ... and without the other order's token there is nothing to pay for at all.
    forged = kit.web.post(
        path(other),
        json={"credit_cents": 300},
        headers={**auth(bought), "PAYMENT-SIGNATURE": header},
    )
    assert forged.status_code == 404
    # The header still pays for the top-up it was signed for.
    assert pay(kit, bought, header).status_code == 200


def test_when_settlement_fails_after_the_cap_was_raised_the_cap_goes_back(kit, wallet, bought):
    gateway = kit.shop.x402
    real_settle = gateway.settle
    raised: list[Decimal] = []
    usdc = balance(kit.sandbox, wallet.address)

    def drained_first(payload, requirements):  # the wallet spends its USDC elsewhere meanwhile
        raised.append(venice_cap(kit, bought))
        fund(kit.sandbox, wallet.address, "0.00")
        return real_settle(payload, requirements)

    gateway.settle = drained_first  # type: ignore[method-assign]
    r = pay(kit, bought, sign(wallet, offer(kit, bought)))
    assert r.status_code == 402, r.text
    assert r.json()["reason"] == "invalid_exact_evm_insufficient_balance"
    assert raised == [Decimal("8.00")]  # settled only after the cap was raised...
    assert venice_cap(kit, bought) == Decimal("5.00")  # ... and set back when it did not
    fund(kit.sandbox, wallet.address, str(usdc))
    kit.worker.drain()  # the refund job: nothing to give back, the top-up ends cancelled
    unchanged(kit, bought, wallet, usdc)
    [cancelled] = [t for t in kit.status(bought)["topups"] if t["status"] != "awaiting_payment"]
    assert cancelled["status"] == "cancelled" and "did not settle" in cancelled["failure_reason"]


def test_a_settlement_that_loses_its_answer_charges_once(kit, wallet, bought):
    kit.sandbox.faults.add({"path": "/x402/settle", "count": 1, "drop": True})
    usdc = balance(kit.sandbox, wallet.address)
    r = pay(kit, bought, sign(wallet, offer(kit, bought)))
    assert r.status_code == 200, r.text
    assert balance(kit.sandbox, wallet.address) == usdc - Decimal(r.json()["price_cents"]) / 100
    assert venice_cap(kit, bought) == Decimal("8.00")


def test_no_room_on_the_keys_account_offers_a_new_key(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, diem=Decimal("10"), accounts=2) as kit:
        wallet = new_wallet()
        fund(kit.sandbox, wallet.address, "25.00")
        order = agent_post(kit, wallet, "/api/buy", {"credit_cents": 600}).json()
        r = kit.web.post(path(order), json={"credit_cents": 400}, headers=auth(order))
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "no_room_on_key_account" and "new key" in error["message"]
        assert "/api/buy" in error["message"]
        assert kit.web.get("/api/supply").json()["reserved_cents"] == 0


def test_the_openapi_documents_the_x402_variant(kit):
    spec = kit.web.get("/openapi.json").json()
    post = spec["paths"]["/api/orders/{order_id}/topups"]["post"]
    assert {"200", "201", "202", "402", "409"} <= set(post["responses"])
    assert any(p["name"] == "PAYMENT-SIGNATURE" for p in post["parameters"])
    assert "payment" in spec["components"]["schemas"]["TopupIn"]["properties"]


def test_the_worker_finishes_a_top_up_the_request_handed_back(tmp_path, db_url):
    """The facilitator fails once and the request may not wait: 202, cap raised but unsettled;
    the worker's own apply_topup job settles it and applies the top-up, charging once."""
    with make_kit(tmp_path, database_url=db_url, x402_sync_seconds=0.01) as kit:
        wallet = new_wallet()
        fund(kit.sandbox, wallet.address, "25.00")
        order = agent_post(kit, wallet, "/api/buy", {"credit_cents": 500}).json()
        usdc = balance(kit.sandbox, wallet.address)
        kit.sandbox.faults.add({"path": "/x402/settle", "count": 1, "status": 500})
        r = pay(kit, order, sign(wallet, offer(kit, order)))
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "paid" and "PAYMENT-RESPONSE" not in r.headers
        assert balance(kit.sandbox, wallet.address) == usdc  # not settled yet
        kit.worker.drain()
        [shown] = kit.status(order)["topups"]
        assert shown["status"] == "applied"
        assert venice_cap(kit, order) == Decimal("8.00")
        assert balance(kit.sandbox, wallet.address) == usdc - Decimal(shown["price_cents"]) / 100
        assert money_in(kit) == order["price_cents"] + shown["price_cents"]
