"""x402 refunds: USDC back to the paying wallet, from the refund wallet, exactly once.

Agents pay with the SDK's own client and throw-away eth-account wallets; the refund wallet
(the sandbox's, funded by the Venice sandbox) signs with the SDK's client scheme; the sandbox
facilitator verifies and settles over its pretend USDC contract. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from cheaptokens.models import Alert, LedgerEntry, Order
from cheaptokens.payments.errors import PaymentProviderUnavailable
from cheaptokens.payments.x402_refunds import X402Refund, X402Refunder
from cheaptokens.sandbox.x402 import REFUND_WALLET
from cheaptokens.worker.watch import watch
from support.agents import agent_post, fund, new_wallet
from support.shopkit import Kit, chat, make_kit, operator_spends, request_refund

from .test_topups import agent_topup

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def kit(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url) as k:
        yield k


def usdc(kit: Kit, address: str) -> Decimal:
    """A wallet's balance as the sandbox's control route shows it."""
    r = kit.venice_http.get(f"/_sandbox/x402/wallets/{address}")
    assert r.status_code == 200, r.text
    return Decimal(r.json()["usdc"])


def bought(kit: Kit, credit_cents: int = 500) -> tuple[Any, dict[str, Any]]:
    wallet = new_wallet()
    fund(kit.sandbox, wallet.address, "25.00")
    r = agent_post(kit, wallet, "/api/buy", {"credit_cents": credit_cents})
    assert r.status_code == 200, r.text
    return wallet, r.json()


def paid_cents(kit: Kit, order_id: str) -> int:
    with kit.shop.db.read() as s:
        order = s.get(Order, order_id)
        assert order is not None and order.paid_cents
        return order.paid_cents


def ledger(kit: Kit, order_id: str, kind: str) -> list[LedgerEntry]:
    with kit.shop.db.read() as s:
        return list(
            s.scalars(
                select(LedgerEntry).where(
                    LedgerEntry.order_id == order_id, LedgerEntry.kind == kind
                )
            ).all()
        )


def alerts(kit: Kit, order_id: str, kind: str) -> list[str]:
    with kit.shop.db.read() as s:
        return list(
            s.scalars(select(Alert.message).where(Alert.order_id == order_id, Alert.kind == kind))
        )


def later(kit: Kit, seconds: float = 120) -> None:
    """Let a retried (or abandoned, leased) job come due."""
    kit.sandbox.clock.advance(seconds)


def status(kit: Kit, order_id: str) -> str:
    with kit.shop.db.read() as s:
        order = s.get(Order, order_id)
        assert order is not None
        return order.status


# ------------------------------------------------------------------------- operator refund
def test_an_operator_refund_pays_the_paying_wallet_exactly_what_it_paid(kit):
    wallet, order = bought(kit)
    oid = order["order_id"]
    paid = paid_cents(kit, oid)
    before, refund_wallet = usdc(kit, wallet.address), usdc(kit, REFUND_WALLET)
    request_refund(kit.shop, oid, reason="operator")
    kit.worker.drain()
    assert status(kit, oid) == "refunded"
    assert usdc(kit, wallet.address) - before == Decimal(paid) / 100
    assert refund_wallet - usdc(kit, REFUND_WALLET) == Decimal(paid) / 100
    assert len(ledger(kit, oid, "refund_requested")) == 1
    [refunded] = ledger(kit, oid, "refunded")
    assert refunded.money_cents == -paid
    with kit.shop.db.read() as s:
        ref = s.get(Order, oid).refund_ref
    assert ref and ref.startswith("0x") and refunded.detail == {"refund_ref": ref}
    # The key is gone first, as with a card refund; the order shows no key.
    assert kit.status(order)["key"] is None
    # The job again (a stray duplicate) pays nothing more.
    assert kit.worker.drain() == 0 and usdc(kit, wallet.address) - before == Decimal(paid) / 100


def test_a_refunded_x402_top_up_goes_back_too(kit):
    wallet, order = bought(kit)
    oid = order["order_id"]
    before_topup = usdc(kit, wallet.address)
    r = agent_topup(kit, wallet, order, 300)
    assert r.status_code == 200, r.text
    topup_paid = before_topup - usdc(kit, wallet.address)
    assert topup_paid > 0
    paid = Decimal(paid_cents(kit, oid)) / 100
    before = usdc(kit, wallet.address)
    request_refund(kit.shop, oid, reason="operator")
    kit.worker.drain()
    assert status(kit, oid) == "refunded"
    assert usdc(kit, wallet.address) - before == paid + topup_paid
    assert sorted(-e.money_cents for e in ledger(kit, oid, "refunded")) == sorted(
        [int(paid * 100), int(topup_paid * 100)]
    )


# ------------------------------------------------------------------------- make whole
def test_with_no_stock_left_the_unspent_part_goes_back_to_the_wallet_pro_rata(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON, diem=Decimal("20")) as kit:
        wallet, order = bought(kit)
        oid = order["order_id"]
        assert chat(kit, order["key"]["api_key"], "llama-3.3-70b", 100_000).status_code == 200
        before = usdc(kit, wallet.address)
        operator_spends(kit, "sandbox-1", Decimal("22"))
        watch(
            db=kit.shop.db,
            gateways=kit.shop.gateways,
            rules=kit.shop.rules,
            clock=kit.now,
            catalogue=kit.shop.catalogue,
        )
        kit.worker.drain()
        assert status(kit, oid) == "refunded"
        with kit.shop.db.read() as s:
            o = s.get(Order, oid)
            unspent, paid, due = o.key_cap_cents, o.paid_cents, o.refund_due_cents
        assert 0 < unspent < 500 and 0 < due < paid
        assert due == -(-paid * unspent // 500)  # rounded up: in the buyer's favour
        assert usdc(kit, wallet.address) - before == Decimal(due) / 100
        assert [e.money_cents for e in ledger(kit, oid, "refunded")] == [-due]


# ------------------------------------------------------------------------- exactly once
class CrashAfterPaying(X402Refunder):
    """The process dies right after the facilitator settled, before anything is recorded."""

    crashes = 1

    def refund(self, *, to: str, amount_cents: int, refund_id: str) -> X402Refund:
        paid = super().refund(to=to, amount_cents=amount_cents, refund_id=refund_id)
        if self.crashes:
            self.crashes -= 1
            raise SystemExit("crashed after the refund settled")
        return paid


def test_a_crash_between_paying_and_recording_pays_once(kit):
    wallet, order = bought(kit)
    oid = order["order_id"]
    paid = paid_cents(kit, oid)
    before = usdc(kit, wallet.address)
    kit.worker.x402_refunds = CrashAfterPaying(kit.shop.x402, kit.shop.settings.refund_key)
    request_refund(kit.shop, oid)
    with pytest.raises(SystemExit):
        kit.worker.drain()
    assert usdc(kit, wallet.address) - before == Decimal(paid) / 100  # paid, not recorded
    assert status(kit, oid) == "fulfilled"
    later(kit)  # the job's lease lapses: it runs again and finds the nonce used
    kit.worker.drain()
    assert status(kit, oid) == "refunded"
    assert usdc(kit, wallet.address) - before == Decimal(paid) / 100
    assert [e.money_cents for e in ledger(kit, oid, "refunded")] == [-paid]
    with kit.shop.db.read() as s:
        ref = s.get(Order, oid).refund_ref
    assert ref and ref.startswith(kit.worker.x402_refunds.address)  # the authorization's id


def test_the_same_refund_sent_again_moves_nothing(kit):
    """What a second refund job (or a second worker) would send: the same nonce."""
    wallet, _ = bought(kit)
    refunder = kit.shop.x402_refunds
    before = usdc(kit, wallet.address)
    first = refunder.refund(to=wallet.address, amount_cents=123, refund_id="refund-x|x402:a")
    assert first.transaction is not None
    again = refunder.refund(to=wallet.address, amount_cents=123, refund_id="refund-x|x402:a")
    assert again.transaction is None and again.nonce == first.nonce
    # even for another amount: the nonce is the refund's, whatever it says
    other = refunder.refund(to=wallet.address, amount_cents=999, refund_id="refund-x|x402:a")
    assert other.transaction is None
    assert usdc(kit, wallet.address) - before == Decimal("1.23")
    # another refund is another nonce
    assert refunder.refund(to=wallet.address, amount_cents=1, refund_id="refund-y|x402:a")
    assert usdc(kit, wallet.address) - before == Decimal("1.24")


def test_the_same_refund_raced_by_four_workers_moves_money_once(kit):
    """Four workers sending one refund at the same moment (a lease that lapsed mid-call)."""
    wallet, _ = bought(kit)
    refunder = kit.shop.x402_refunds
    before = usdc(kit, wallet.address)
    start = threading.Barrier(4)
    results: list[X402Refund] = []
    later_again: list[PaymentProviderUnavailable] = []  # "try later": the job would retry

    def send() -> None:
        start.wait()
        try:
            results.append(
                refunder.refund(to=wallet.address, amount_cents=250, refund_id="refund-r|x402:b")
            )
        except PaymentProviderUnavailable as exc:
            later_again.append(exc)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) + len(later_again) == 4 and len({r.nonce for r in results}) == 1
    assert sum(r.transaction is not None for r in results) == 1
    assert usdc(kit, wallet.address) - before == Decimal("2.50")


def test_a_lost_settle_answer_pays_once(kit):
    wallet, order = bought(kit)
    oid = order["order_id"]
    paid = paid_cents(kit, oid)
    before = usdc(kit, wallet.address)
    request_refund(kit.shop, oid)
    kit.sandbox.faults.add({"path": "/x402/settle", "count": 1, "drop": True})
    kit.worker.drain()
    # the money moved, the answer never came: the job waits to ask again
    assert usdc(kit, wallet.address) - before == Decimal(paid) / 100
    assert status(kit, oid) == "fulfilled"
    later(kit)
    kit.worker.drain()
    assert status(kit, oid) == "refunded"
    assert usdc(kit, wallet.address) - before == Decimal(paid) / 100
    assert len(ledger(kit, oid, "refunded")) == 1


def test_a_facilitator_error_on_settle_is_retried_and_pays_once(kit):
    wallet, order = bought(kit)
    oid = order["order_id"]
    paid = paid_cents(kit, oid)
    before = usdc(kit, wallet.address)
    request_refund(kit.shop, oid)
    kit.sandbox.faults.add({"path": "/x402/settle", "count": 2, "status": 500})
    kit.worker.drain()
    assert status(kit, oid) == "fulfilled" and usdc(kit, wallet.address) == before
    for _ in range(3):
        later(kit)
        kit.worker.drain()
    assert status(kit, oid) == "refunded"
    assert usdc(kit, wallet.address) - before == Decimal(paid) / 100


# ------------------------------------------------------------------------- underfunded
def test_an_underfunded_refund_wallet_waits_with_an_alert_then_pays_once(kit):
    wallet, order = bought(kit)
    oid = order["order_id"]
    paid = paid_cents(kit, oid)
    before = usdc(kit, wallet.address)
    fund(kit.sandbox, REFUND_WALLET, "0.01")
    request_refund(kit.shop, oid)
    kit.worker.drain()
    later(kit)
    kit.worker.drain()  # tried twice: still short
    assert status(kit, oid) == "fulfilled"
    assert usdc(kit, wallet.address) == before
    assert usdc(kit, REFUND_WALLET) == Decimal("0.01")
    [alert] = alerts(kit, oid, "refund_wallet_underfunded")  # one alert, not one per try
    assert REFUND_WALLET in alert and wallet.address in alert
    assert f"${paid // 100}.{paid % 100:02d}" in alert
    assert not ledger(kit, oid, "refunded") and not ledger(kit, oid, "refund_failed")
    fund(kit.sandbox, REFUND_WALLET, "100.00")
    later(kit)
    kit.worker.drain()
    assert status(kit, oid) == "refunded"
    assert usdc(kit, wallet.address) - before == Decimal(paid) / 100
    assert usdc(kit, REFUND_WALLET) == Decimal("100.00") - Decimal(paid) / 100
    later(kit)
    assert kit.worker.drain() == 0
    assert usdc(kit, wallet.address) - before == Decimal(paid) / 100


# ------------------------------------------------------------------------- no refund wallet
def test_without_a_refund_wallet_the_operator_is_told_whom_to_pay(kit):
    wallet, order = bought(kit)
    oid = order["order_id"]
    paid = paid_cents(kit, oid)
    before = usdc(kit, wallet.address)
    kit.worker.x402_refunds = None  # live mode without CHEAPTOKENS_X402_REFUND_KEY
    request_refund(kit.shop, oid)
    kit.worker.drain()
    assert status(kit, oid) == "failed"
    assert usdc(kit, wallet.address) == before
    [alert] = alerts(kit, oid, "refund_failed")
    assert wallet.address in alert and f"${paid // 100}.{paid % 100:02d}" in alert
    assert "CHEAPTOKENS_X402_REFUND_KEY" in alert


def test_the_sandbox_funds_its_refund_wallet_and_keeps_what_it_spent(tmp_path):
    from cheaptokens.sandbox import Sandbox

    path = tmp_path / "state.json"
    sandbox = Sandbox(state_path=path)
    assert Decimal(sandbox.x402.wallet(REFUND_WALLET)["usdc"]) == Decimal("1000000.00")
    sandbox.x402.fund(REFUND_WALLET, "3.00")
    sandbox.persist()
    again = Sandbox(state_path=path)
    assert Decimal(again.x402.wallet(REFUND_WALLET)["usdc"]) == Decimal("3.00")


def test_a_refund_authorization_is_valid_for_at_least_its_window(kit):
    refunder = kit.shop.x402_refunds
    requirement = refunder.requirements(to=new_wallet().address, amount_cents=5)
    payload = refunder.authorization(requirement, "refund-z")
    auth = payload.payload["authorization"]
    step = kit.shop.x402.terms.authorization_seconds
    now = datetime.now(UTC).timestamp()
    assert now + step - 5 <= int(auth["validBefore"]) <= now + 2 * step + 5
    assert auth["from"] == refunder.address and auth["nonce"] == refunder.nonce("refund-z")
    # signed again within the same window: byte for byte the same authorization
    assert refunder.authorization(requirement, "refund-z") == payload or (
        int(datetime.now(UTC).timestamp()) // step != int(now) // step
    )
