"""Money safety against the sandbox: stock follows the live balance, keys that spend past their
caps are on record (and their buyers refused), honest keys that cannot spend are made whole.

The attacks are real calls through the sandbox: the operator's own uncapped key spending the
account's DIEM, a buyer's key making a call that costs more than its cap (Venice admits a call
while the key is under its cap and bills it afterwards), a key deleted by hand in Venice.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from cheaptokens.models import Account, Alert, LedgerEntry, Order
from cheaptokens.worker.watch import watch
from support.shopkit import Kit, chat, make_kit, operator_spends

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
#: $37.50 per million input tokens, 1M context (anonymized): the operator's own heavy use
COSTLY = "openai-gpt-54-pro"
#: $4.50 per million input tokens (private): what a buyer's key may call
PRIVATE_COSTLY = "kimi-k3-fast-api"
ADMIN_PASSWORD = "money-safety-test-password"


def look(kit: Kit) -> Any:
    return watch(
        db=kit.shop.db,
        gateways=kit.shop.gateways,
        rules=kit.shop.rules,
        clock=kit.now,
        catalogue=kit.shop.catalogue,
    )


def balance_cents(kit: Kit, account: str) -> int:
    b = kit.shop.gateways[account].balance().diem or Decimal(0)
    return int(b * 100)


def supply(kit: Kit) -> dict[str, Any]:
    body: dict[str, Any] = kit.web.get("/api/supply").json()
    return body


def key_of(kit: Kit, order: dict[str, Any]) -> dict[str, Any]:
    key: dict[str, Any] = kit.status(order)["key"]
    return key


def dashboard_alerts(kit: Kit) -> str:
    """The operator's dashboard, logged in: its Alerts section."""
    login = kit.web.get("/admin/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert token is not None
    kit.web.post(
        "/admin/login",
        data={"csrf_token": token.group(1), "username": "admin", "password": ADMIN_PASSWORD},
    )
    page = kit.web.get("/admin").text
    return page[page.index('id="alerts-title"') :]


def test_stock_follows_the_live_balance(tmp_path, db_url):
    # The reserve derived from the catalogue (the kit's default is none).
    with make_kit(tmp_path, database_url=db_url, now=NOON, overshoot_reserve_cents=None) as kit:
        assert supply(kit)["remaining_cents"] == 8900  # 100 DIEM × 0.9 − $1 margin
        reserve = look(kit).reserves["private"]
        assert supply(kit)["remaining_cents"] == 10_000 - reserve < 8900  # the stricter wins
        operator_spends(kit, "sandbox-1", Decimal("5"))
        look(kit)
        balance = balance_cents(kit, "sandbox-1")
        assert balance < 9600
        assert supply(kit)["remaining_cents"] == balance - reserve

        # A sale is the shop's liability until its key spends it: stock drops by the sale.
        order = kit.buy(500)
        kit.worker.drain()
        look(kit)
        assert supply(kit)["remaining_cents"] == balance - reserve - 500
        # Spending by the buyer's key lowers the balance and the liability alike (to the cent:
        # the shop rounds both the way that offers less).
        assert chat(kit, key_of(kit, order)["api_key"], "llama-3.3-70b", 20_000).status_code == 200
        look(kit)
        assert balance - reserve - 501 <= supply(kit)["remaining_cents"] <= balance - reserve - 500

        # The operator spends what was sold: nothing more is offered, and an alert says why.
        operator_spends(kit, "sandbox-1", Decimal("90"))
        look(kit)
        assert supply(kit)["remaining_cents"] == 0 and supply(kit)["sold_out"] is True
        assert kit.web.post("/api/quotes", json={"credit_cents": 100}).status_code == 409
        with kit.shop.db.read() as s:
            kinds = s.scalars(select(Alert.kind)).all()
        assert kinds.count("account_short") == 1  # once, though the watch looks again
        look(kit)
        with kit.shop.db.read() as s:
            assert s.scalars(select(Alert.kind)).all().count("account_short") == 1


def test_keys_past_their_cap_are_recorded_deleted_and_their_buyer_refused(tmp_path):
    with make_kit(tmp_path, now=NOON) as kit:
        for _ in range(2):
            order = kit.buy(100)
            kit.worker.drain()
            key = key_of(kit, order)["api_key"]
            # One call admitted under the $1 cap that costs $1.13: billed afterwards.
            assert chat(kit, key, PRIVATE_COSTLY, 250_000).status_code == 200
            assert chat(kit, key, PRIVATE_COSTLY, 10).status_code == 402  # at the cap now
            report = look(kit)
            assert report.deleted_past_cap == 1
            assert chat(kit, key, PRIVATE_COSTLY, 10).status_code == 401  # deleted
            with kit.shop.db.read() as s:
                o = s.get(Order, order["order_id"])
                assert o.used_cents > 100 and o.key_deleted_at is not None
        with kit.shop.db.read() as s:
            overshoots = s.scalars(
                select(LedgerEntry).where(LedgerEntry.kind == "key_overshot")
            ).all()
        assert len(overshoots) == 2 and all(e.credit_cents > 0 for e in overshoots)
        look(kit)  # looking again records nothing twice
        refused = kit.web.post("/api/orders", json={"credit_cents": 100})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "refused"
        # Another buyer is served.
        other = TestClient(kit.web.app, base_url="http://testserver", client=("10.0.0.9", 1))
        assert other.post("/api/orders", json={"credit_cents": 100}).status_code == 201


def test_keys_bought_before_the_strikes_all_overshoot_in_one_burst_then_the_buyer_is_refused(
    tmp_path,
):
    """The bound in docs/money-safety.md: strikes refuse further sales, they do not revoke keys
    already sold, so a buyer who buys first and fires together takes one overshoot per key."""
    with make_kit(tmp_path, now=NOON) as kit:
        orders = [kit.buy(100) for _ in range(3)]
        kit.worker.drain()
        for order in orders:  # all fired before the watch looks
            assert (
                chat(kit, key_of(kit, order)["api_key"], PRIVATE_COSTLY, 250_000).status_code == 200
            )
        assert look(kit).deleted_past_cap == 3
        with kit.shop.db.read() as s:
            kinds = s.scalars(select(LedgerEntry.kind)).all()
        assert kinds.count("key_overshot") == 3  # more than the 2 strikes that refuse
        refused = kit.web.post("/api/orders", json={"credit_cents": 100})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "refused"


def test_a_key_deleted_in_venice_is_replaced_with_its_unspent_credit(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON, admin_password=ADMIN_PASSWORD) as kit:
        order = kit.buy(500)
        kit.worker.drain()
        old = key_of(kit, order)["api_key"]
        assert chat(kit, old, "llama-3.3-70b", 50_000).status_code == 200
        look(kit)  # the watch's last reading of the key's usage, before it vanishes
        with kit.shop.db.read() as s:
            old_id = s.get(Order, order["order_id"]).key_id
        kit.shop.gateways["sandbox-1"].delete_key(old_id)  # by hand, in Venice's dashboard
        report = look(kit)
        assert report.replacing == [order["order_id"]]
        assert kit.status(order)["status"] == "replacing"
        kit.worker.drain()
        body = kit.status(order)
        assert body["status"] == "fulfilled"
        assert body["replacement"]["reason"] == "the key no longer exists in Venice"
        new = body["key"]["api_key"]
        assert new and new != old and "replaced" in body["message"]
        with kit.shop.db.read() as s:
            o = s.get(Order, order["order_id"])
            spent = o.spent_before_cents
            assert 0 < spent < 500 and o.key_cap_cents == 500 - spent
            kinds = s.scalars(
                select(LedgerEntry.kind).where(LedgerEntry.order_id == order["order_id"])
            ).all()
        assert {"replacement_started", "key_replaced"} <= set(kinds)
        assert chat(kit, new, "llama-3.3-70b", 10).status_code == 200
        assert chat(kit, old, "llama-3.3-70b", 10).status_code == 401
        # The no-JavaScript order page (order cookie) says why the key changed.
        kit.web.cookies.set("ct_order", order["order_token"], path=f"/orders/{order['order_id']}")
        page = kit.web.get(f"/orders/{order['order_id']}").text
        assert "Why your key changed: the key no longer exists in Venice" in page
        assert new in page
        listed = kit.shop.gateways["sandbox-1"].list_keys()
        ours = [k for k in listed if k.description == f"cheaptokens:{order['order_id']}"]
        assert len(ours) == 1 and ours[0].consumption_limits.diem == Decimal(500 - spent) / 100
        # The operator's dashboard lists it (it said "No alerts … clean" when keys vanished).
        alerts = dashboard_alerts(kit)
        assert "No alerts" not in alerts
        row = alerts[alerts.index("make_whole") :]
        assert order["order_id"] in row and "the key no longer exists in Venice" in row


def test_a_drained_account_moves_honest_keys_to_another_account(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON, diem=Decimal("20"), accounts=2) as kit:
        order = kit.buy(500)
        kit.worker.drain()
        with kit.shop.db.read() as s:
            first = s.get(Order, order["order_id"]).account
        other = "sandbox-2" if first == "sandbox-1" else "sandbox-1"
        old = key_of(kit, order)["api_key"]
        assert chat(kit, old, "llama-3.3-70b", 50_000).status_code == 200
        operator_spends(kit, first, Decimal("22"))  # the account is now below zero
        assert balance_cents(kit, first) < 0
        assert chat(kit, old, "llama-3.3-70b", 10).status_code == 402  # the honest key is dead
        look(kit)
        kit.worker.drain()
        body = kit.status(order)
        assert body["status"] == "fulfilled"
        assert "ran out of credit" in body["replacement"]["reason"]
        new = body["key"]["api_key"]
        assert chat(kit, new, "llama-3.3-70b", 10).status_code == 200
        with kit.shop.db.read() as s:
            o = s.get(Order, order["order_id"])
            assert o.account == other
            assert s.get(Account, first).diem_balance_cents < 0
            alerts = s.scalars(select(Alert.kind)).all()
        assert "make_whole" in alerts and "account_short" in alerts
        # The drained account sells nothing more; the other keeps selling.
        look(kit)
        assert supply(kit)["remaining_cents"] > 0
        quote = kit.web.post("/api/quotes", json={"credit_cents": 100}).json()
        with kit.shop.db.read() as s:
            from cheaptokens.models import Quote

            assert s.get(Quote, quote["quote_id"]).account == other


def test_with_no_stock_anywhere_the_unspent_part_is_refunded_pro_rata(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON, diem=Decimal("20")) as kit:
        order = kit.buy(500)
        kit.worker.drain()
        key = key_of(kit, order)["api_key"]
        assert chat(kit, key, "llama-3.3-70b", 100_000).status_code == 200
        operator_spends(kit, "sandbox-1", Decimal("22"))
        look(kit)
        kit.worker.drain()
        body = kit.status(order)
        assert body["status"] == "refunded" and body["key"] is None
        with kit.shop.db.read() as s:
            o = s.get(Order, order["order_id"])
            unspent = o.key_cap_cents
            refunded = s.scalars(
                select(LedgerEntry.money_cents).where(
                    LedgerEntry.order_id == o.id, LedgerEntry.kind == "refunded"
                )
            ).all()
        assert 0 < unspent < 500
        due = -(-o.paid_cents * unspent // 500)  # rounded up: in the buyer's favour
        assert body["replacement"]["refund_due_cents"] == due
        assert refunded == [-due]


def test_keys_call_private_models_only_unless_the_shop_sells_all_model_keys(tmp_path):
    with make_kit(tmp_path, now=NOON) as kit:
        order = kit.buy(500)
        kit.worker.drain()
        key = key_of(kit, order)["api_key"]
        assert kit.status(order)["models"] == "private"
        assert chat(kit, key, "llama-3.3-70b", 10).status_code == 200
        refused = chat(kit, key, COSTLY, 10)  # an anonymized model
        assert refused.status_code == 403
        listed = {k.id: k for k in kit.shop.gateways["sandbox-1"].list_keys()}
        with kit.shop.db.read() as s:
            assert listed[s.get(Order, order["order_id"]).key_id].model_privacy == "PRIVATE_ONLY"
        r = kit.web.post("/api/orders", json={"credit_cents": 5000, "models": "all"})
        assert r.status_code == 400 and r.json()["error"]["field"] == "models"
    with make_kit(tmp_path / "all", now=NOON, allow_all_models=True) as kit:
        small = kit.web.post("/api/orders", json={"credit_cents": 4999, "models": "all"})
        assert small.status_code == 400 and "at least 5000" in small.json()["error"]["message"]
        order = kit.web.post("/api/orders", json={"credit_cents": 5000, "models": "all"}).json()
        kit.web.post(order["checkout_url"], json={"outcome": "paid"})
        kit.worker.drain()
        assert kit.status(order)["models"] == "all"
        assert chat(kit, key_of(kit, order)["api_key"], COSTLY, 10).status_code == 200


def test_a_small_accounts_reserve_is_capped_at_a_share_of_its_allocation(tmp_path):
    with make_kit(tmp_path, now=NOON, diem=Decimal("10"), overshoot_reserve_cents=None) as kit:
        assert supply(kit)["capacity_cents"] == 800  # $10 × 0.9 − $1
        report = look(kit)
        assert report.reserves["private"] > 1_000  # two of the costliest private calls
        # …but a quarter of the $10 allocation at most, so the account still sells.
        assert supply(kit)["remaining_cents"] == 1_000 - 250
