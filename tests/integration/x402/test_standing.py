"""Standing orders: an agent leaves "buy $X when the price of $1 is at most P, before T",
backed by an x402 authorization that is settled only when it fires.

The agent is the SDK's httpx client with a throw-away eth-account wallet; the price falls
when a cheaper curve is published (as the hourly re-plan does); the worker fires."""

from __future__ import annotations

import base64
import dataclasses
import secrets
import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import openai
import pytest
from sqlalchemy import select
from x402.schemas import PaymentPayload, PaymentRequirements

from cheaptokens import inventory
from cheaptokens.errors import Conflict
from cheaptokens.models import Order, StandingOrder, X402Payment
from cheaptokens.orders import published, standing
from cheaptokens.pricing.curve import default_params, quote_price_cents
from cheaptokens.times import iso_z, next_midnight
from support.agents import agent_get, agent_post, balance, fund, new_wallet, required_of, sign
from support.shopkit import Kit, make_kit

from .conftest import live_keys, money_in

URL = "/api/standing-orders"


@pytest.fixture
def kit(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url) as k:
        yield k


@pytest.fixture
def wallet(kit):
    w = new_wallet()
    fund(kit.sandbox, w.address, "25.00")
    return w


def price_per_dollar(kit: Kit) -> Decimal:
    r = kit.web.get("/api/pricing")
    assert r.status_code == 200, r.text
    return Decimal(r.json()["price_cents_per_dollar"])


def expiry(kit: Kit, minutes: int = 10) -> str:
    return iso_z(min(kit.now() + timedelta(minutes=minutes), next_midnight(kit.now())))


def terms(kit: Kit, *, credit: int = 500, price: Any = None, **more: Any) -> dict[str, Any]:
    """Terms that do not fire at today's price (P a few cents below it) unless told."""
    if price is None:
        price = str((price_per_dollar(kit) - 5).quantize(Decimal("0.01")))
    return {
        "credit_cents": credit,
        "max_price_per_dollar_cents": price,
        "expires_at": expiry(kit),
        **more,
    }


def cheaper(kit: Kit, *, a: str = "0.05", b: str = "0", beta: str = "0.25") -> None:
    """Publish a cheaper curve from now to 00:00 UTC: the price steps down (to ``a`` of list
    with ``b = 0`` and ``beta = 0``, whatever is sold)."""
    price_per_dollar(kit)  # opens the day
    now = kit.now()
    with kit.shop.db.begin() as s:
        supply = inventory.supply(s, day=now.date())
        params = dataclasses.replace(
            default_params(capacity_cents=supply.capacity_cents, day=now.date()),
            a=Decimal(a),
            b=Decimal(b),
            beta=Decimal(beta),
            valid_from=now - timedelta(seconds=1),
        )
        published.publish(s, params=params, now=now)


def dear(kit: Kit) -> None:
    """A dear curve (90 cents per $1 however much is sold), whatever the hour: the real
    clock's price falls to a few cents by the evening, below any limit a test sets."""
    cheaper(kit, a="0.90", beta="0")


def leave(kit: Kit, wallet: Any, body: dict[str, Any]) -> dict[str, Any]:
    r = agent_post(kit, wallet, URL, body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def look(kit: Kit, made: dict[str, Any]) -> dict[str, Any]:
    r = kit.web.get(
        f"{URL}/{made['standing_id']}",
        headers={"Authorization": f"Bearer {made['standing_token']}"},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def fire(kit: Kit) -> int:
    fired = kit.worker.standing_orders()
    kit.worker.drain()
    return fired


def sold_cents(kit: Kit) -> int:
    with kit.shop.db.read() as s:
        return inventory.supply(s, day=kit.now().date()).sold_cents


# ----------------------------------------------------------------------------- the life
def test_it_waits_above_its_price_then_fires_when_the_price_steps_down(kit, wallet):
    dear(kit)
    body = terms(kit)
    first = kit.web.post(URL, json=body)
    assert first.status_code == 402, first.text
    req = required_of(first)["accepts"][0]
    # The authorization is for X at the limit price (the ceiling), valid beyond T.
    ceiling = int(Decimal(500) * Decimal(body["max_price_per_dollar_cents"]) / 100)
    assert int(req["amount"]) == ceiling * 10_000
    assert req["extra"]["standing"] is True and req["extra"]["credit_cents"] == 500

    made = leave(kit, wallet, body)
    assert made["status"] == "waiting" and made["standing_token"].startswith("sot_")
    assert made["terms"]["authorized_cents"] == ceiling
    assert made["order"] is None
    # Verified, not settled: nothing moved, nothing reserved.
    assert balance(kit.sandbox, wallet.address) == Decimal("25.00")
    assert sold_cents(kit) == 0

    assert fire(kit) == 0  # the price is above P
    assert look(kit, made)["status"] == "waiting"

    cheaper(kit)
    assert price_per_dollar(kit) < Decimal(body["max_price_per_dollar_cents"])
    assert fire(kit) == 1
    seen = look(kit, made)
    assert seen["status"] == "fired"
    order = seen["order"]
    assert order["status"] == "fulfilled"
    # Paid exactly what was authorized; the cheaper price bought more credit than X.
    assert order["price_cents"] == ceiling
    assert order["credit_cents"] > 500
    assert order["key"]["credit_cents"] == order["credit_cents"]
    assert balance(kit.sandbox, wallet.address) == Decimal("25.00") - Decimal(ceiling) / 100
    assert money_in(kit) == ceiling
    # The credit is what the authorized amount buys at the price it fired at: one more cent
    # of credit would cost more than was paid.
    with kit.shop.db.read() as s:
        row = s.scalars(select(Order)).one()
        assert row.payment_provider == "x402" and row.client == wallet.address.lower()

    client = openai.OpenAI(
        api_key=order["key"]["api_key"],
        base_url=order["key"]["base_url"],
        http_client=kit.venice_http,
    )
    chat = client.chat.completions.create(
        model="llama-3.3-70b", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.usage.completion_tokens > 0

    # The key is shown until the agent confirms, as for any order.
    r = kit.web.post(
        f"/api/orders/{seen['order_id']}/received",
        headers={"Authorization": f"Bearer {seen['order_token']}"},
    )
    assert r.status_code == 200
    again = look(kit, made)
    assert again["order"]["key"]["api_key"] is None
    # Firing again changes nothing.
    assert fire(kit) == 0
    assert balance(kit.sandbox, wallet.address) == Decimal("25.00") - Decimal(ceiling) / 100


def test_at_exactly_its_price_it_fires_a_hair_below_it_does_not(kit, wallet):
    kit.sandbox.clock.set(kit.now(), frozen=True)  # the curve also moves with the hour
    price = price_per_dollar(kit)
    below = leave(kit, wallet, terms(kit, price=str(price - Decimal("0.0001"))))
    at = leave(kit, wallet, terms(kit, price=str(price)))
    assert fire(kit) == 1
    assert look(kit, at)["status"] == "fired"
    assert look(kit, below)["status"] == "waiting"


def test_credit_for_buys_the_most_the_amount_pays_for(kit):
    now = kit.now()
    params = default_params(capacity_cents=10_000, day=now.date())
    for amount in (1, 37, 250, 999):
        credit = standing.credit_for(
            amount_cents=amount, params=params, now=now, remaining_cents=5_000
        )

        def price(c: int) -> int:
            return quote_price_cents(params, now=now, remaining_cents=5_000, credit_cents=c)

        assert price(credit) <= amount < price(credit + 1)


def test_a_discount_limit_fires_too(kit, wallet):
    dear(kit)
    made = leave(
        kit,
        wallet,
        {"credit_cents": 300, "min_discount_percent": 90, "expires_at": expiry(kit)},
    )
    assert made["terms"]["min_discount_percent"] == "90"
    assert fire(kit) == 0
    cheaper(kit)  # a = 0.05: 95 % off
    assert fire(kit) == 1
    seen = look(kit, made)
    assert seen["status"] == "fired" and seen["order"]["status"] == "fulfilled"
    assert seen["order"]["price_cents"] == 30  # 300 cents at 10 cents per $1
    assert seen["order"]["credit_cents"] >= 300


def test_the_webhook_hears_key_ready(kit, wallet):
    made = leave(kit, wallet, terms(kit, webhook_url="http://127.0.0.1:9/standing"))
    assert made["webhook_secret"].startswith("whsec_")
    cheaper(kit)
    assert fire(kit) == 1
    seen = look(kit, made)
    r = kit.web.get(
        f"/api/orders/{seen['order_id']}/deliveries",
        headers={"Authorization": f"Bearer {seen['order_token']}"},
    )
    assert r.status_code == 200
    assert r.json()["webhook_url"] == "http://127.0.0.1:9/standing"
    assert [e["type"] for e in r.json()["events"]] == ["key.ready"]
    assert "api_key" not in str(r.json()["events"][0]["data"])


# ----------------------------------------------------------------------------- endings
def test_cancelled_before_it_fires_it_never_charges(kit, wallet):
    made = leave(kit, wallet, terms(kit))
    auth = {"Authorization": f"Bearer {made['standing_token']}"}
    r = kit.web.delete(f"{URL}/{made['standing_id']}", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert kit.web.delete(f"{URL}/{made['standing_id']}", headers=auth).status_code == 200
    cheaper(kit)
    assert fire(kit) == 0
    assert look(kit, made)["status"] == "cancelled"
    assert balance(kit.sandbox, wallet.address) == Decimal("25.00")
    assert money_in(kit) == 0 and live_keys(kit) == 0 and sold_cents(kit) == 0


def test_a_fired_order_cannot_be_cancelled(kit, wallet):
    made = leave(kit, wallet, terms(kit))
    cheaper(kit)
    assert fire(kit) == 1
    r = kit.web.delete(
        f"{URL}/{made['standing_id']}",
        headers={"Authorization": f"Bearer {made['standing_token']}"},
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert look(kit, made)["status"] == "fired"


def test_another_token_sees_and_cancels_nothing(kit, wallet):
    made = leave(kit, wallet, terms(kit))
    other = leave(kit, wallet, terms(kit))
    wrong = {"Authorization": f"Bearer {other['standing_token']}"}
    assert kit.web.get(f"{URL}/{made['standing_id']}", headers=wrong).status_code == 404
    assert kit.web.delete(f"{URL}/{made['standing_id']}", headers=wrong).status_code == 404
    assert look(kit, made)["status"] == "waiting"


def race_cancel_and_fire(kit: Kit, made: dict[str, Any], *, lag: float) -> dict[str, Any]:
    """Cancel and fire ``made`` at the same moment, on two threads (the cancel ``lag``
    seconds late: firing asks the facilitator first, so both get their turn to win)."""
    outcome: dict[str, Any] = {}
    start = threading.Barrier(2)

    def cancel() -> None:
        start.wait()
        time.sleep(lag)
        try:
            outcome["cancel"] = standing.cancel(
                db=kit.shop.db,
                token_key=kit.shop.token_key,
                standing_id=made["standing_id"],
                token=made["standing_token"],
                now=kit.now(),
            ).standing.status
        except Conflict:  # the 409 when firing won
            outcome["cancel"] = "conflict"

    def fire_it() -> None:
        start.wait()
        outcome["fire"] = standing.fire_one(
            db=kit.shop.db,
            rules=kit.shop.rules,
            x402=kit.shop.x402,
            box=kit.shop.box,
            token_key=kit.shop.token_key,
            clock=kit.shop.clock,
            standing_id=made["standing_id"],
        )

    threads = [threading.Thread(target=cancel), threading.Thread(target=fire_it)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcome


def test_cancel_and_fire_at_once_exactly_one_wins(kit, wallet):
    cheaper(kit, a="0.45", beta="0")  # each firing takes a little of the stock
    for lag in (0, 0.01, 0.03, 0.06, 0.1, 0.2, 0.4):
        made = leave(kit, wallet, terms(kit, price="50"))
        outcome = race_cancel_and_fire(kit, made, lag=lag)
        kit.worker.drain()
        final = look(kit, made)
        if outcome["fire"]:
            assert final["status"] == "fired" and outcome["cancel"] == "conflict"
            assert final["order"]["status"] == "fulfilled"
        else:
            assert final["status"] == "cancelled" and outcome["cancel"] == "cancelled"
            assert final["order"] is None
    with kit.shop.db.read() as s:
        fired = s.scalars(select(StandingOrder).where(StandingOrder.status == "fired")).all()
        assert len(s.scalars(select(Order)).all()) == len(fired)
    spent = Decimal("25.00") - balance(kit.sandbox, wallet.address)
    assert spent == Decimal(money_in(kit)) / 100 == Decimal(250 * len(fired)) / 100


def test_expiry_charges_nothing(kit, wallet):
    made = leave(kit, wallet, terms(kit))
    kit.sandbox.clock.advance(11 * 60)
    cheaper(kit)
    assert fire(kit) == 0
    seen = look(kit, made)
    assert seen["status"] == "expired" and seen["order"] is None
    assert balance(kit.sandbox, wallet.address) == Decimal("25.00")
    assert money_in(kit) == 0 and live_keys(kit) == 0
    with kit.shop.db.read() as s:
        assert s.scalars(select(X402Payment.status)).one() == "void"


def test_an_emptied_wallet_ends_failed_without_a_key(kit, wallet):
    made = leave(kit, wallet, terms(kit))
    fund(kit.sandbox, wallet.address, "0.00")  # spent elsewhere
    cheaper(kit)
    assert fire(kit) == 0
    seen = look(kit, made)
    assert seen["status"] == "failed" and "no longer settles" in seen["reason"]
    assert seen["order"] is None
    assert money_in(kit) == 0 and live_keys(kit) == 0 and sold_cents(kit) == 0


def test_a_nonce_spent_elsewhere_ends_failed_without_a_key(kit, wallet):
    body = terms(kit)
    req = required_of(kit.web.post(URL, json=body))["accepts"][0]
    nonce = "0x" + secrets.token_hex(32)
    r = kit.web.post(URL, json=body, headers={"PAYMENT-SIGNATURE": sign(wallet, req, nonce=nonce)})
    assert r.status_code == 201, r.text
    made = r.json()
    # The wallet signs the same nonce to someone else for 1 cent, and that one settles first.
    someone = new_wallet()
    elsewhere = {**req, "payTo": someone.address, "amount": "10000"}
    header = sign(wallet, elsewhere, nonce=nonce)
    payload = PaymentPayload.model_validate_json(base64.b64decode(header))
    assert kit.shop.x402.settle(payload, PaymentRequirements.model_validate(elsewhere)).success
    cheaper(kit)
    assert fire(kit) == 0
    seen = look(kit, made)
    assert seen["status"] == "failed" and seen["order"] is None
    assert money_in(kit) == 0 and live_keys(kit) == 0 and sold_cents(kit) == 0
    assert balance(kit.sandbox, wallet.address) == Decimal("24.99")  # only the other payment


def test_an_authorization_that_fails_to_settle_after_firing_leaves_no_key(kit, wallet):
    made = leave(kit, wallet, terms(kit))
    cheaper(kit)
    assert kit.worker.standing_orders() == 1  # fired: the order is paid by authorization
    fund(kit.sandbox, wallet.address, "0.00")  # the money leaves before the settle
    kit.worker.drain()
    seen = look(kit, made)
    assert seen["status"] == "failed"
    assert seen["order"]["status"] == "cancelled" and seen["order"]["key"] is None
    assert money_in(kit) == 0 and live_keys(kit) == 0 and sold_cents(kit) == 0


class CrashAfterSettle:
    """The facilitator as the shop sees it, except that the process dies the moment the money
    has moved (before the key is recorded): a crash at the worst point."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def settle(self, payload: Any, requirement: Any) -> Any:
        self.inner.settle(payload, requirement)
        raise RuntimeError("crashed after the settlement")


def test_a_crash_after_settling_still_ends_with_exactly_one_key(kit, wallet):
    made = leave(kit, wallet, terms(kit))
    cheaper(kit)
    doomed = dataclasses.replace(kit.worker, name="doomed", x402=CrashAfterSettle(kit.shop.x402))
    assert doomed.standing_orders() == 1
    with pytest.raises(RuntimeError, match="crashed"):
        doomed.run_one()
    authorized = look(kit, made)["terms"]["authorized_cents"]
    assert balance(kit.sandbox, wallet.address) == Decimal("25.00") - Decimal(authorized) / 100
    kit.sandbox.clock.advance(kit.shop.rules.job_lease.total_seconds() + 1)  # the lease lapses
    kit.worker.drain()
    seen = look(kit, made)
    assert seen["status"] == "fired" and seen["order"]["status"] == "fulfilled"
    assert live_keys(kit) == 1
    assert money_in(kit) == authorized  # charged once
    assert balance(kit.sandbox, wallet.address) == Decimal("25.00") - Decimal(authorized) / 100


# ----------------------------------------------------------------------------- attacks
def test_the_same_authorization_backs_one_standing_order(kit, wallet):
    body = terms(kit)
    req = required_of(kit.web.post(URL, json=body))["accepts"][0]
    header = sign(wallet, req)
    first = kit.web.post(URL, json=body, headers={"PAYMENT-SIGNATURE": header})
    assert first.status_code == 201, first.text
    again = kit.web.post(URL, json=body, headers={"PAYMENT-SIGNATURE": header})
    assert again.status_code == 402 and again.json()["reason"] == "payment_replayed"
    # Not at /api/buy either (another amount) — and never a second standing order.
    with kit.shop.db.read() as s:
        assert len(s.scalars(select(StandingOrder)).all()) == 1


def test_the_same_authorization_sent_twice_at_once_backs_one(kit, wallet):
    body = terms(kit)
    req = required_of(kit.web.post(URL, json=body))["accepts"][0]
    header = sign(wallet, req)
    answers: list[int] = []
    start = threading.Barrier(2)

    def send() -> None:
        start.wait()
        r = kit.web.post(URL, json=body, headers={"PAYMENT-SIGNATURE": header})
        answers.append(r.status_code)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [201, 402]
    with kit.shop.db.read() as s:
        assert len(s.scalars(select(StandingOrder)).all()) == 1


def test_the_wallet_that_signs_in_sees_its_standing_orders_and_tokens(kit, wallet):
    made = leave(kit, wallet, terms(kit))
    other = new_wallet()
    fund(kit.sandbox, other.address, "25.00")
    leave(kit, other, terms(kit))
    r = agent_get(kit, wallet, "/api/wallet/standing-orders")
    assert r.status_code == 200, r.text
    listed = r.json()["standing_orders"]
    assert [x["standing_id"] for x in listed] == [made["standing_id"]]
    assert listed[0]["standing_token"] == made["standing_token"]
    assert listed[0]["status"] == "waiting"
    # Without signing in: a challenge, nothing shown.
    challenge = kit.web.get("/api/wallet/standing-orders")
    assert challenge.status_code == 402 and "standing_orders" not in challenge.text


def test_an_authorization_that_ends_before_t_is_refused(kit, wallet):
    body = terms(kit)
    req = required_of(kit.web.post(URL, json=body))["accepts"][0]
    header = sign(wallet, req, valid_before=int(time.time()) + 120)  # T is 10 minutes off
    r = kit.web.post(URL, json=body, headers={"PAYMENT-SIGNATURE": header})
    assert r.status_code == 402 and r.json()["reason"] == "authorization_too_short"
    with kit.shop.db.read() as s:
        assert s.scalars(select(StandingOrder)).all() == []


def test_a_short_amount_is_refused(kit, wallet):
    body = terms(kit)
    req = required_of(kit.web.post(URL, json=body))["accepts"][0]
    accepted = {**req, "amount": str(int(req["amount"]) - 10_000)}
    header = sign(wallet, req, value=int(accepted["amount"]), accepted=accepted)
    r = kit.web.post(URL, json=body, headers={"PAYMENT-SIGNATURE": header})
    assert r.status_code == 402 and r.json()["reason"] == "payment_mismatch"


def test_an_underfunded_wallet_is_refused_at_once(kit):
    poor = new_wallet()
    fund(kit.sandbox, poor.address, "0.10")
    body = terms(kit)
    req = required_of(kit.web.post(URL, json=body))["accepts"][0]
    r = kit.web.post(URL, json=body, headers={"PAYMENT-SIGNATURE": sign(poor, req)})
    assert r.status_code == 402 and "insufficient_balance" in r.json()["reason"]


def test_one_wallet_cannot_leave_unbounded_standing_orders(kit, wallet):
    for _ in range(standing.MAX_WAITING_PER_WALLET):
        leave(kit, wallet, terms(kit))
    body = terms(kit)
    req = required_of(kit.web.post(URL, json=body))["accepts"][0]
    r = kit.web.post(URL, json=body, headers={"PAYMENT-SIGNATURE": sign(wallet, req)})
    assert r.status_code == 402 and r.json()["reason"] == "too_many_waiting"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"expires_at": "+1d"}, "expires_at"),
        ({"expires_at": "2026-01-01T00:00:00"}, "expires_at"),
        ({"credit_cents": 5}, "credit_cents"),
        ({"max_price_per_dollar_cents": "0"}, "max_price_per_dollar_cents"),
        ({"max_price_per_dollar_cents": "101"}, "max_price_per_dollar_cents"),
        ({"max_price_per_dollar_cents": "4.123456"}, "max_price_per_dollar_cents"),
        ({"max_price_per_dollar_cents": "cheap"}, "max_price_per_dollar_cents"),
        ({"max_price_per_dollar_cents": 42.5}, "max_price_per_dollar_cents"),
        ({"min_discount_percent": 50}, "max_price_per_dollar_cents"),
        ({"max_price_per_dollar_cents": None}, "max_price_per_dollar_cents"),
        ({"models": "all"}, "models"),
        ({"models": "some"}, "models"),
        ({"webhook_url": "ftp://example.com/x"}, "webhook_url"),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(kit, change, field):
    body = {**terms(kit, price="40"), **change}
    if body.get("expires_at") == "+1d":
        body["expires_at"] = iso_z(next_midnight(kit.now()) + timedelta(minutes=1))
    r = kit.web.post(URL, json=body)
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"]["field"] == field
    with kit.shop.db.read() as s:
        assert s.scalars(select(StandingOrder)).all() == []
        assert s.scalars(select(X402Payment)).all() == []


def test_the_routes_are_in_openapi(kit):
    paths = kit.web.get("/openapi.json").json()["paths"]
    assert set(paths[URL]) == {"post"}
    assert set(paths[URL + "/{standing_id}"]) == {"get", "delete"}


# ----------------------------------------------------------------------------- the race
@pytest.mark.postgres
def test_many_standing_orders_firing_at_one_price_step_never_oversell_or_double_charge(
    tmp_path, pg_url
):
    with make_kit(tmp_path, database_url=pg_url, diem=Decimal("40")) as kit:
        capacity = kit.web.get("/api/supply").json()["capacity_cents"]
        credit = 400
        wallets = [new_wallet() for _ in range(30)]
        assert credit * len(wallets) > capacity
        dear(kit)
        made = []
        for w in wallets:
            fund(kit.sandbox, w.address, "10.00")
            made.append(leave(kit, w, terms(kit, credit=credit, price="50")))
        # Nothing fires at that price (P = 50 is below it), then all are eligible at once.
        assert fire(kit) == 0
        cheaper(kit, a="0.45", beta="0")  # 45 cents per $1 however much is sold
        workers = [kit.worker, dataclasses.replace(kit.worker, name="second", _last={})]
        start = threading.Barrier(len(workers))
        fired: list[int] = []

        def run(w: Any) -> None:
            start.wait()
            fired.append(w.standing_orders())

        threads = [threading.Thread(target=run, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        kit.worker.drain()

        with kit.shop.db.read() as s:
            orders = s.scalars(select(Order)).all()
            rows = {r.wallet: r for r in s.scalars(select(StandingOrder)).all()}
            supply = inventory.supply(s, day=kit.now().date())
        assert sum(fired) == len(orders)
        # Each paid its 200 cents for the most they buy at 45 per $1 (446 cents: 446 × 0.45
        # is 200.7, rounded down as every price is); then the stock ran out.
        assert 1 < len(orders) < len(wallets)
        assert all((o.price_cents, o.credit_cents) == (200, 446) for o in orders)
        assert supply.remaining_cents < credit
        assert len({o.id for o in orders}) == len(orders)
        # No oversell: the keys' caps fit in the day's capacity.
        assert sum(o.credit_cents for o in orders if o.status == "fulfilled") <= capacity
        assert supply.sold_cents <= capacity and supply.remaining_cents >= 0
        assert live_keys(kit) == len(orders)
        by_id = {o.id: o for o in orders}
        for w in wallets:
            row = rows[w.address]
            spent = Decimal("10.00") - balance(kit.sandbox, w.address)
            if row.status == "fired":
                order = by_id[row.order_id]
                assert order.status == "fulfilled" and order.credit_cents >= credit
                assert spent == Decimal(order.price_cents) / 100  # charged once, exactly
            else:
                assert row.status == "waiting" and spent == 0
        assert money_in(kit) == sum(o.price_cents for o in orders)
