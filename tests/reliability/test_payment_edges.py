"""Payments that arrive twice, late, out of order, forged, short or for nobody.

Invariants (docs/architecture.md): money in is matched by exactly one key or a refund; credit is
never sold beyond capacity; an event the provider did not sign changes nothing. The sandbox
provider's signed webhooks drive the database-parametrised cases (SQLite and PostgreSQL);
Stripe-specific orderings go through the official SDK against the Checkout fake.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cheaptokens.payments import sign_webhook
from reliability.paykit import (
    counts,
    deliver_stripe,
    keys_of,
    ledger_kinds,
    order_row,
    post_sandbox_event,
    sandbox_event,
    session_id_of,
    shop_keys,
    stripe_body,
    supply,
    tamper,
)
from support.shopkit import Kit, make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CAPACITY = 8900  # 100 DIEM x 0.9 - $1 margin


def assert_never_oversold(kit: Kit) -> None:
    s = supply(kit)
    assert s["sold_cents"] + s["reserved_cents"] <= s["capacity_cents"], s
    assert s["remaining_cents"] >= 0, s
    live = sum(int(k.consumption_limits.diem * 100) for k in shop_keys(kit))
    assert live <= s["capacity_cents"], (live, s)


def lapse(kit: Kit, order: dict[str, Any], seconds: int = 121) -> None:
    """Let the shop's checkout hold run out and the sweeper cancel the order."""
    kit.sandbox.clock.advance(seconds)
    kit.worker.upkeep(force=True)
    assert kit.status(order)["status"] == "cancelled"


# ============================================================================ sandbox webhooks
def test_double_click_and_replays_pay_once(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order = kit.buy(500, pay=False)
        first = kit.web.post(order["checkout_url"], json={"outcome": "paid"})
        second = kit.web.post(order["checkout_url"], json={"outcome": "paid"})  # double click
        assert first.status_code == second.status_code == 200
        form = kit.web.post(order["checkout_url"], data={"outcome": "paid"}, follow_redirects=False)
        assert form.status_code == 303
        kit.worker.drain()
        # Another paid event for the same order, much later, validly signed: not a second sale.
        # For the same payment it is a duplicate; for a different payment, a refund.
        kit.sandbox.clock.advance(3600)
        from dataclasses import replace

        from cheaptokens.models import Order

        with kit.shop.db.read() as s:
            paid_ref = s.get(Order, order["order_id"]).payment_ref
        same = replace(sandbox_event(kit, order, event_id="evt_again"), payment_ref=paid_ref)
        assert post_sandbox_event(kit, same).status_code == 200
        other = sandbox_event(kit, order, event_id="evt_second_paid")
        assert post_sandbox_event(kit, other).status_code == 200
        kit.worker.drain()
        assert kit.status(order)["status"] == "fulfilled"
        assert len(keys_of(kit, order["order_id"])) == 1
        kinds = ledger_kinds(kit, order["order_id"])
        assert kinds.count("payment_received") == 1
        assert kinds.count("credit_sold") == 1
        assert "payment_duplicate" in kinds
        assert kinds.count("stray_payment_refunded") == 1
        assert supply(kit)["sold_cents"] == 500
        assert_never_oversold(kit)


def test_same_event_id_is_applied_once(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order = kit.buy(500, pay=False)
        event = sandbox_event(kit, order, event_id="evt_dup_1")
        for _ in range(3):
            assert post_sandbox_event(kit, event).status_code == 200
        kit.sandbox.clock.advance(250)
        assert post_sandbox_event(kit, event).status_code == 200  # redelivered later
        kit.worker.drain()
        assert kit.status(order)["status"] == "fulfilled"
        kinds = ledger_kinds(kit, order["order_id"])
        assert kinds.count("payment_received") == 1 and "payment_duplicate" not in kinds
        assert counts(kit)["events"] == 1
        assert len(keys_of(kit, order["order_id"])) == 1


def test_failure_or_expiry_after_payment_changes_nothing(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order = kit.buy(500, pay=False)
        assert (
            post_sandbox_event(kit, sandbox_event(kit, order, event_id="e_paid")).status_code == 200
        )
        for kind in ("failed", "expired"):
            event = sandbox_event(kit, order, kind, event_id=f"e_{kind}")
            assert post_sandbox_event(kit, event).status_code == 200
        kit.worker.drain()
        assert kit.status(order)["status"] == "fulfilled"
        assert len(keys_of(kit, order["order_id"])) == 1
        assert supply(kit)["sold_cents"] == 500 and supply(kit)["reserved_cents"] == 0
        assert "order_cancelled" not in ledger_kinds(kit, order["order_id"])


def test_payment_after_expiry_is_sold_while_there_is_room(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON, checkout_ttl_seconds=120) as kit:
        order = kit.buy(500, pay=False)
        post_sandbox_event(kit, sandbox_event(kit, order, "expired", event_id="e_exp"))
        assert kit.status(order)["status"] == "cancelled"
        assert supply(kit)["reserved_cents"] == 0
        kit.sandbox.clock.advance(600)  # the provider's session outlives the shop's hold
        assert (
            post_sandbox_event(kit, sandbox_event(kit, order, event_id="e_late")).status_code == 200
        )
        kit.worker.drain()
        body = kit.status(order)
        assert body["status"] == "fulfilled"
        assert body["key"]["api_key"].startswith("VENICE_INFERENCE_KEY_")
        assert supply(kit)["sold_cents"] == 500
        assert len(keys_of(kit, order["order_id"])) == 1
        assert_never_oversold(kit)


def test_payment_after_sell_out_is_refunded_never_oversold(tmp_path, db_url):
    with make_kit(
        tmp_path, database_url=db_url, now=NOON, checkout_ttl_seconds=120, max_order_cents=10_000
    ) as kit:
        late = kit.buy(500, pay=False)
        lapse(kit, late)
        rival = kit.buy(CAPACITY)  # takes every cent the lapsed hold gave back
        kit.worker.drain()
        assert kit.status(rival)["status"] == "fulfilled"
        r = post_sandbox_event(kit, sandbox_event(kit, late, event_id="e_too_late"))
        assert r.status_code == 200
        kit.worker.drain()
        assert kit.status(late)["status"] == "refunded"
        assert keys_of(kit, late["order_id"]) == []
        row = order_row(kit, late["order_id"])
        assert row.failure_reason and "sold out" in row.failure_reason
        assert row.paid_cents == late["price_cents"]  # what the refund gives back
        assert "refunded" in ledger_kinds(kit, late["order_id"]) or any(
            "refund" in k for k in ledger_kinds(kit, late["order_id"])
        )
        s = supply(kit)
        assert s["sold_cents"] == CAPACITY and s["reserved_cents"] == 0
        assert_never_oversold(kit)


def test_partial_room_late_payment_moves_to_another_account_or_refunds(tmp_path, db_url):
    # Two accounts of $89 each: a late payment fits on whichever still has room.
    with make_kit(
        tmp_path,
        database_url=db_url,
        now=NOON,
        accounts=2,
        checkout_ttl_seconds=120,
        max_order_cents=10_000,
    ) as kit:
        late = kit.buy(5000, pay=False)
        lapse(kit, late)
        a = kit.buy(CAPACITY)
        b = kit.buy(CAPACITY - 4000)  # 4000 left in all: not enough for 5000 on any account
        kit.worker.drain()
        post_sandbox_event(kit, sandbox_event(kit, late, event_id="e_late_5000"))
        kit.worker.drain()
        assert kit.status(late)["status"] == "refunded"
        assert kit.status(a)["status"] == kit.status(b)["status"] == "fulfilled"
        assert_never_oversold(kit)


def test_mismatched_amount_or_currency_is_refunded_without_a_key(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        short = kit.buy(500, pay=False)
        over = kit.buy(600, pay=False)
        euro = kit.buy(700, pay=False)
        cases = [
            (short, {"amount_cents": short["price_cents"] - 1}),
            (over, {"amount_cents": over["price_cents"] + 100}),
            (euro, {"currency": "eur"}),
        ]
        for i, (order, change) in enumerate(cases):
            event = sandbox_event(kit, order, event_id=f"e_mismatch_{i}", **change)
            assert post_sandbox_event(kit, event).status_code == 200
        kit.worker.drain()
        for order, change in cases:
            assert kit.status(order)["status"] == "refunded", change
            assert keys_of(kit, order["order_id"]) == []
            row = order_row(kit, order["order_id"])
            assert row.failure_reason == "paid amount or currency does not match the order"
            assert row.paid_cents == change.get("amount_cents", order["price_cents"])
        s = supply(kit)
        assert s["sold_cents"] == 0 and s["reserved_cents"] == 0


def test_payment_after_the_day_ended_is_refunded(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order = kit.buy(500, pay=False)
        kit.sandbox.clock.advance(13 * 3600)  # past 00:00 UTC
        post_sandbox_event(kit, sandbox_event(kit, order, event_id="e_tomorrow"))
        kit.worker.drain()
        assert kit.status(order)["status"] == "refunded"
        assert keys_of(kit, order["order_id"]) == []


def test_events_for_unknown_orders_are_recorded_and_change_nothing(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        mine = kit.buy(500, pay=False)
        before_supply, before = supply(kit), counts(kit)
        strangers = [
            "ord_" + "0" * 32,  # shaped like ours, but no such order
            "order-from-another-integration-" + "x" * 60,  # longer than our id column
            "ünïcode-🙂-id",
        ]
        for i, other in enumerate(strangers):
            event = sandbox_event(kit, mine, event_id=f"e_stranger_{i}", order_id=other)
            r = post_sandbox_event(kit, event)
            assert r.status_code == 200, r.text
        kit.worker.drain()
        assert supply(kit) == before_supply
        after = counts(kit)
        assert after["orders"] == before["orders"] and after["quotes"] == before["quotes"]
        assert after["events"] == before["events"] + len(strangers)
        assert ledger_kinds(kit).count("event_unknown_order") == len(strangers)
        assert kit.status(mine)["status"] == "awaiting_payment"
        assert shop_keys(kit) == []


def test_unsigned_forged_stale_and_future_webhooks_are_refused(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url, now=NOON) as kit:
        order = kit.buy(500, pay=False)
        event = sandbox_event(kit, order, event_id="e_forge")
        payload = kit.shop.payments.event_payload(event)  # type: ignore[attr-defined]
        now = int(kit.now().timestamp())
        before = counts(kit)
        attempts = {
            "unsigned": post_sandbox_event(kit, event, header=""),
            "wrong secret": post_sandbox_event(
                kit, event, header=sign_webhook(payload, "whsec_attacker_guess", now)
            ),
            "stale": post_sandbox_event(kit, event, ts=now - 301),
            "future": post_sandbox_event(kit, event, ts=now + 301),
            "garbage header": post_sandbox_event(kit, event, header="t=abc,v1=zz"),
            "no v1": post_sandbox_event(kit, event, header=f"t={now}"),
            "body swapped": post_sandbox_event(
                kit,
                event,
                header=kit.shop.payments.sign_webhook(payload, now),  # type: ignore[attr-defined]
                body=payload.replace(str(order["price_cents"]).encode(), b"1", 1),
            ),
            "signed non-json": post_sandbox_event(kit, event, body=b"\xff\xfe not json"),
        }
        for name, r in attempts.items():
            assert r.status_code == 400, (name, r.text)
            assert r.json()["error"]["code"] in ("bad_signature", "bad_payload"), name
        assert counts(kit) == before
        assert kit.status(order)["status"] == "awaiting_payment"
        # The same event, correctly signed, is accepted: the refusals above were the signature's.
        assert post_sandbox_event(kit, event, ts=now - 299).status_code == 200
        kit.worker.drain()
        assert kit.status(order)["status"] == "fulfilled"


# ============================================================================ Stripe
def test_stripe_completed_then_failed_then_expired_stays_paid(stripe_kit):
    kit, fake = stripe_kit
    order = kit.web.post("/api/orders", json={"credit_cents": 500}).json()
    sid = session_id_of(order)
    paid = fake.mark_paid(sid)
    bodies = [
        stripe_body("checkout.session.completed", paid, event_id="evt_s_completed"),
        stripe_body("checkout.session.async_payment_failed", paid, event_id="evt_s_failed"),
        stripe_body(
            "checkout.session.expired", {**paid, "status": "expired"}, event_id="evt_s_exp"
        ),
        stripe_body("checkout.session.completed", paid, event_id="evt_s_completed"),  # redelivery
    ]
    for body in bodies:
        assert deliver_stripe(kit, body).status_code == 200
    kit.worker.drain()
    assert kit.status(order)["status"] == "fulfilled"
    assert len(keys_of(kit, order["order_id"])) == 1
    assert ledger_kinds(kit, order["order_id"]).count("payment_received") == 1
    assert not [r for r in fake.requests if r.path.startswith("/v1/refunds")]


def test_stripe_delayed_method_pays_on_async_success_only(stripe_kit):
    kit, fake = stripe_kit
    order = kit.web.post("/api/orders", json={"credit_cents": 500}).json()
    pending = fake.mark_paid(session_id_of(order), payment_status="unpaid")
    body = stripe_body("checkout.session.completed", pending, event_id="evt_s_unpaid")
    assert deliver_stripe(kit, body).status_code == 200
    assert kit.status(order)["status"] == "awaiting_payment"
    settled = {**pending, "payment_status": "paid"}
    body = stripe_body("checkout.session.async_payment_succeeded", settled, event_id="evt_s_async")
    assert deliver_stripe(kit, body).status_code == 200
    kit.worker.drain()
    assert kit.status(order)["status"] == "fulfilled"


def test_stripe_completed_after_expired_is_a_late_sale(stripe_kit):
    kit, fake = stripe_kit
    order = kit.web.post("/api/orders", json={"credit_cents": 500}).json()
    sid = session_id_of(order)
    expired = fake.mark_expired(sid)
    assert (
        deliver_stripe(
            kit, stripe_body("checkout.session.expired", expired, event_id="evt_s_expired")
        ).status_code
        == 200
    )
    assert kit.status(order)["status"] == "cancelled"
    paid = fake.mark_paid(sid)
    body = stripe_body("checkout.session.completed", paid, event_id="evt_s_late")
    assert deliver_stripe(kit, body).status_code == 200
    kit.worker.drain()
    assert kit.status(order)["status"] == "fulfilled"
    assert supply(kit)["sold_cents"] == 500
    assert not [r for r in fake.requests if r.path.startswith("/v1/refunds")]


def test_stripe_payment_after_hold_lapsed_and_sold_out_is_refunded(stripe_kit):
    kit, fake = stripe_kit
    late = kit.web.post("/api/orders", json={"credit_cents": 500}).json()
    lapse(kit, late)  # Stripe's session (>= 30 min) is still open after our 2-minute hold
    rival = kit.web.post("/api/orders", json={"credit_cents": CAPACITY}).json()
    rival_paid = fake.mark_paid(session_id_of(rival))
    deliver_stripe(kit, stripe_body("checkout.session.completed", rival_paid, event_id="evt_rv"))
    paid = fake.mark_paid(session_id_of(late))
    body = stripe_body("checkout.session.completed", paid, event_id="evt_s_too_late")
    assert deliver_stripe(kit, body).status_code == 200
    kit.worker.drain()
    assert kit.status(rival)["status"] == "fulfilled"
    assert kit.status(late)["status"] == "refunded"
    refunds = [r for r in fake.requests if r.path.startswith("/v1/refunds")]
    assert len(refunds) == 1
    assert keys_of(kit, late["order_id"]) == []
    assert supply(kit)["sold_cents"] == CAPACITY
    assert_never_oversold(kit)


def test_stripe_currency_or_amount_mismatch_is_refunded_through_stripe(stripe_kit):
    kit, fake = stripe_kit
    a = kit.web.post("/api/orders", json={"credit_cents": 500}).json()
    b = kit.web.post("/api/orders", json={"credit_cents": 600}).json()
    pa, pb = fake.mark_paid(session_id_of(a)), fake.mark_paid(session_id_of(b))
    deliver_stripe(
        kit,
        stripe_body("checkout.session.completed", {**pa, "currency": "eur"}, event_id="evt_eur"),
    )
    deliver_stripe(
        kit,
        stripe_body(
            "checkout.session.completed",
            {**pb, "amount_total": pb["amount_total"] - 50},
            event_id="evt_short",
        ),
    )
    kit.worker.drain()
    assert kit.status(a)["status"] == kit.status(b)["status"] == "refunded"
    assert keys_of(kit, a["order_id"]) == keys_of(kit, b["order_id"]) == []
    assert len([r for r in fake.requests if r.path.startswith("/v1/refunds")]) == 2
    assert supply(kit)["sold_cents"] == 0


def test_stripe_replay_stale_and_forged_change_nothing(stripe_kit):
    kit, fake = stripe_kit
    order = kit.web.post("/api/orders", json={"credit_cents": 500}).json()
    paid = fake.mark_paid(session_id_of(order))
    body = stripe_body("checkout.session.completed", paid, event_id="evt_s_once")
    signed_at = int(kit.now().timestamp())
    assert deliver_stripe(kit, body, ts=signed_at).status_code == 200
    kit.worker.drain()
    before = counts(kit)
    kit.sandbox.clock.advance(301)
    # The captured request replayed verbatim is stale; re-signed it is a duplicate.
    assert deliver_stripe(kit, body, ts=signed_at).status_code == 400
    assert deliver_stripe(kit, body).status_code == 200
    assert deliver_stripe(kit, body, signed=False).status_code == 400
    assert deliver_stripe(kit, body, secret="whsec_wrong").status_code == 400
    forged = tamper(body, amount_total=1, metadata={"order_id": "ord_" + "f" * 32})
    header = sign_webhook(body, "whsec_test_FAKE_reliability_not_real", int(kit.now().timestamp()))
    r = kit.web.post("/webhooks/stripe", content=forged, headers={"Stripe-Signature": header})
    assert r.status_code == 400
    kit.worker.drain()
    assert counts(kit) == before
    assert len(keys_of(kit, order["order_id"])) == 1


def test_stripe_event_for_another_integration_is_acknowledged(stripe_kit):
    kit, fake = stripe_kit
    order = kit.web.post("/api/orders", json={"credit_cents": 500}).json()
    paid = fake.mark_paid(session_id_of(order))
    before = counts(kit)
    foreign = {**paid, "metadata": {}, "client_reference_id": None}
    body = stripe_body("checkout.session.completed", foreign, event_id="evt_foreign")
    assert deliver_stripe(kit, body).status_code == 200
    other_type = stripe_body("payment_intent.succeeded", {"id": "pi_x"}, event_id="evt_pi")
    assert deliver_stripe(kit, other_type).status_code == 200
    assert counts(kit) == before
    assert kit.status(order)["status"] == "awaiting_payment"


def test_stripe_return_with_a_bogus_session_does_not_crash(stripe_kit):
    kit, fake = stripe_kit
    order = kit.web.post("/api/orders", json={"credit_cents": 500}).json()

    def back(order_id: str, session_id: str) -> Any:
        return kit.web.get(
            "/checkout/return",
            params={"order": order_id, "session_id": session_id},
            follow_redirects=False,
        )

    r = back(order["order_id"], "cs_test_does_not_exist")
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/orders/{order['order_id']}"
    # Another order's paid session does not pay this one...
    other = kit.web.post("/api/orders", json={"credit_cents": 600}).json()
    fake.mark_paid(session_id_of(other))
    assert back(order["order_id"], session_id_of(other)).status_code == 303
    assert kit.status(order)["status"] == "awaiting_payment"
    # ...and its own does, once, however often the buyer reloads the return page.
    for _ in range(2):
        assert back(other["order_id"], session_id_of(other)).status_code == 303
    kit.worker.drain()
    assert kit.status(other)["status"] == "fulfilled"
    assert ledger_kinds(kit, other["order_id"]).count("payment_received") == 1
