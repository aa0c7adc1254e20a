"""Every way a paid request can be wrong gets a clear 402 and changes nothing; a replayed or
raced authorization never buys a second key; a price that rose is not charged."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from sqlalchemy import select

from cheaptokens import inventory
from cheaptokens.models import LedgerEntry
from support.agents import balance, fund, new_wallet, sign

from .conftest import live_keys, money_in, offer, pay, statuses


def unchanged(kit, wallet, usdc: str = "25.00") -> None:
    assert balance(kit.sandbox, wallet.address) == Decimal(usdc)
    assert money_in(kit) == 0
    assert live_keys(kit) == 0
    assert "fulfilled" not in statuses(kit)
    with kit.shop.db.read() as s:
        assert inventory.supply(s, day=kit.now().date()).sold_cents == 0


@pytest.fixture
def wallet(kit):
    w = new_wallet()
    fund(kit.sandbox, w.address, "25.00")
    return w


def test_the_first_call_prices_the_credit_like_a_quote(kit):
    req = offer(kit)
    assert req["scheme"] == "exact"
    assert req["network"] == kit.shop.settings.x402_network
    assert req["asset"] == kit.shop.settings.x402_asset
    assert req["payTo"] == kit.shop.settings.x402_pay_to
    quote = kit.web.post("/api/quotes", json={"credit_cents": 500}).json()
    assert int(req["amount"]) == quote["price_cents"] * 10_000  # USDC: 6 decimals, exact
    assert req["extra"]["credit_cents"] == 500 and req["extra"]["quote_id"].startswith("q_")
    with kit.shop.db.read() as s:  # reserved, as a quote reserves
        assert inventory.supply(s, day=kit.now().date()).reserved_cents == 1000


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"value": -1}, "invalid_exact_evm_payload_authorization_value_mismatch"),
        ({"to": "0x000000000000000000000000000000000000dEaD"}, "recipient_mismatch"),
        ({"valid_before": -10}, "valid_before"),
        ({"valid_after": 3600}, "valid_after"),
        ({"chain_id": 8453}, "signature"),
        ({"accepted": {"amount": -1}}, "payment_mismatch"),
        ({"accepted": {"payTo": "0x000000000000000000000000000000000000dEaD"}}, "payment_mismatch"),
        ({"accepted": {"network": "eip155:8453"}}, "invalid_network"),
        ({"accepted": {"asset": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"}}, "invalid_network"),
    ],
)
def test_a_wrong_payment_gets_a_clear_402_and_changes_nothing(kit, wallet, change, reason):
    req = offer(kit)
    kwargs = {}
    if "value" in change:
        kwargs["value"] = int(req["amount"]) + change["value"]
    if "to" in change:
        kwargs["to"] = change["to"]
    if "valid_before" in change:
        kwargs["valid_before"] = int(time.time()) + change["valid_before"]
    if "valid_after" in change:
        kwargs["valid_after"] = int(time.time()) + change["valid_after"]
    if "chain_id" in change:
        kwargs["chain_id"] = change["chain_id"]
    if "accepted" in change:
        accepted = dict(req)
        for k, v in change["accepted"].items():
            accepted[k] = str(int(req[k]) + v) if k == "amount" else v
        kwargs["accepted"] = accepted
        if "amount" in change["accepted"]:
            kwargs["value"] = int(accepted["amount"])
        if "payTo" in change["accepted"]:
            kwargs["to"] = accepted["payTo"]
    r = pay(kit, sign(wallet, req, **kwargs))
    assert r.status_code == 402, r.text
    assert reason in r.json()["reason"], r.json()
    assert r.json()["accepts"], "a refused payment is offered the requirements again"
    unchanged(kit, wallet)


def test_an_underfunded_wallet_is_refused(kit):
    poor = new_wallet()
    fund(kit.sandbox, poor.address, "0.01")
    r = pay(kit, sign(poor, offer(kit)))
    assert r.status_code == 402
    assert r.json()["reason"] == "invalid_exact_evm_insufficient_balance"
    unchanged(kit, poor, "0.01")


def test_a_replayed_payment_never_buys_a_second_key(kit, wallet):
    req = offer(kit)
    header = sign(wallet, req)
    first = pay(kit, header)
    assert first.status_code == 200, first.text
    price = Decimal(first.json()["price_cents"]) / 100
    for credit in (500, 700):  # the same authorization, for this order or another
        again = pay(kit, header, credit)
        assert again.status_code == 402
        assert again.json()["reason"] in ("payment_replayed", "payment_mismatch", "price_changed")
    assert balance(kit.sandbox, wallet.address) == Decimal("25.00") - price
    assert statuses(kit).count("fulfilled") == 1
    assert live_keys(kit) == 1


def test_the_same_authorization_raced_twice_buys_one_key(kit, wallet):
    header = sign(wallet, offer(kit))
    answers: list[int] = []
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        answers.append(pay(kit, header).status_code)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200, 402, 402, 402]
    assert statuses(kit).count("fulfilled") == 1
    assert live_keys(kit) == 1
    assert money_in(kit) > 0


def test_a_payment_signed_before_the_price_rose_is_not_charged(kit, wallet):
    req = offer(kit)
    header = sign(wallet, req)
    kit.sandbox.clock.advance(4 * 3600)  # the quote lapses; hours to 00:00 move the price
    r = pay(kit, header)
    if r.status_code == 200:  # the same price four hours on: charged what was signed, honestly
        assert int(r.json()["price_cents"]) * 10_000 == int(req["amount"])
        return
    assert r.status_code == 402
    assert r.json()["reason"] == "price_changed"
    new = r.json()["accepts"][0]
    assert new["amount"] != req["amount"]
    unchanged(kit, wallet)
    ok = pay(kit, sign(wallet, new))
    assert ok.status_code == 200, ok.text
    assert int(ok.json()["price_cents"]) * 10_000 == int(new["amount"])


def test_when_settlement_fails_after_the_key_was_made_the_key_is_deleted(kit, wallet):
    gateway = kit.shop.x402
    real_settle = gateway.settle

    def drained_first(payload, requirements):  # the wallet spends its USDC elsewhere meanwhile
        fund(kit.sandbox, wallet.address, "0.00")
        return real_settle(payload, requirements)

    gateway.settle = drained_first  # type: ignore[method-assign]
    r = pay(kit, sign(wallet, offer(kit)))
    assert r.status_code == 402, r.text
    assert r.json()["reason"] == "invalid_exact_evm_insufficient_balance"
    assert live_keys(kit) == 0
    assert money_in(kit) == 0
    assert statuses(kit) == ["cancelled"]
    with kit.shop.db.read() as s:
        assert inventory.supply(s, day=kit.now().date()).sold_cents == 0
        # The key had been made (then deleted): the order was refused after it, not before.
        row = s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "payment_not_settled")).one()
        assert row.detail is not None and row.detail["key_id"]
    listed = kit.shop.gateways["sandbox-1"].list_keys()
    assert [k for k in listed if k.id == row.detail["key_id"]] == []


@pytest.mark.parametrize("fault", [{"status": 500}, {"drop": True}])
def test_verify_failing_or_losing_its_answer_is_a_503_and_changes_nothing(kit, wallet, fault):
    kit.sandbox.faults.add({"path": "/x402/verify", "count": 1, **fault})
    r = pay(kit, sign(wallet, offer(kit)))
    assert r.status_code == 503, r.text
    assert "nothing was charged" in r.json()["error"]["message"]
    unchanged(kit, wallet)
    assert statuses(kit) == ["cancelled"]


@pytest.mark.parametrize("fault", [{"status": 500}, {"drop": True}])
def test_a_settlement_that_fails_or_loses_its_answer_charges_once(kit, wallet, fault):
    kit.sandbox.faults.add({"path": "/x402/settle", "count": 1, **fault})
    r = pay(kit, sign(wallet, offer(kit)))
    assert r.status_code == 200, r.text
    price = Decimal(r.json()["price_cents"]) / 100
    assert balance(kit.sandbox, wallet.address) == Decimal("25.00") - price
    assert money_in(kit) == r.json()["price_cents"]
    assert live_keys(kit) == 1
