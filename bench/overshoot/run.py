"""The overshoot attack, against the sandbox: what attackers take, and whether honest buyers
are made whole.

    .venv/bin/python bench/overshoot/run.py [--attackers 4] [--parallel 8] [--honest 6]
                                            [--diem 40] [--accounts 3] [--watch 10]

The Venice sandbox runs under uvicorn (real HTTP), with its default run time (2.5 s per
million tokens), so parallel calls are each admitted before any is billed — as on Venice.
Its accounts hold ``--diem`` DIEM a day and $100 of USD each. The shop (SQLite, a worker
with the watch every ``--watch`` seconds) runs in this process.

* ``--attackers`` buyers pay for $1 keys (private models only, the shop's default) and each
  fires ``--parallel`` simultaneous calls of the costliest prompt a private model admits (the
  catalogue's worst private call, e.g. ``grok-4-20`` with a 2M-token prompt).
* ``--honest`` buyers pay for $5 keys and spend them in small calls, one a second.

Reported (and written to ``bench/overshoot/results.json``):

* stock lost beyond sold credit — what attacker keys spent past their caps — in total and per
  attacker dollar paid;
* honest buyers left short after make-whole: credit bought − (credit used + credit on a live
  key that can spend it + the credit a pro-rata refund paid for), per buyer (target 0);
* seconds from the end of the attack (its last call answered, so all of it billed) to the
  detection of each honest order whose key can no longer spend, and to that buyer's
  replacement key or refund (target < 60 s) — an account drained by an earlier call of the
  burst was drained sooner, by at most the burst's spread;
* the accounts' USD balance before and after (keys carry a USD cap of 0: must not move).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
from sqlalchemy import select  # noqa: E402

from cheaptokens import migrate  # noqa: E402
from cheaptokens.config import Settings  # noqa: E402
from cheaptokens.models import LedgerEntry, Order  # noqa: E402
from cheaptokens.money import CENT  # noqa: E402
from cheaptokens.orders import flows  # noqa: E402
from cheaptokens.sandbox import AccountSpec, Sandbox  # noqa: E402
from cheaptokens.shop import build_shop  # noqa: E402
from cheaptokens.venice.catalogue import worst_call  # noqa: E402
from cheaptokens.worker.maintenance import refresh_accounts  # noqa: E402
from cheaptokens.worker.runner import Worker  # noqa: E402
from support.live import serve  # noqa: E402
from support.procs import free_port  # noqa: E402
from support.shopkit import paid_order  # noqa: E402


def wait_fulfilled(shop, order_ids: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with shop.db.read() as s:
            statuses = [s.get(Order, o).status for o in order_ids]
        if all(st == "fulfilled" for st in statuses):
            return
        time.sleep(0.2)
    raise SystemExit(f"orders not fulfilled: {statuses}")


def key_of(shop, order_id: str) -> str:
    with shop.db.read() as s:
        return flows.reveal_key(box=shop.box, order=s.get(Order, order_id)) or ""


async def chat(http: httpx.AsyncClient, key: str, model: str, tokens: int) -> int:
    r = await http.post(
        "/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": model,
            "messages": [{"role": "user", "content": "w " * tokens}],
            "max_tokens": 1,
        },
    )
    return r.status_code


async def attack(base: str, keys: list[str], model: str, tokens: int, parallel: int) -> list:
    async with httpx.AsyncClient(base_url=base, timeout=600) as http:
        calls = [chat(http, k, model, tokens) for k in keys for _ in range(parallel)]
        return await asyncio.gather(*calls)


async def honest_spending(base: str, keys: list[str], stop: threading.Event) -> dict[str, int]:
    codes: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        while not stop.is_set():
            for k in keys:
                code = await chat(http, k, "llama-3.3-70b", 5_000)  # about a cent each
                codes[str(code)] = codes.get(str(code), 0) + 1
            await asyncio.sleep(1)
    return codes


def balances(base: str, admins: list[str]) -> list[dict]:
    out = []
    for admin in admins:
        r = httpx.get(f"{base}/billing/balance", headers={"Authorization": f"Bearer {admin}"})
        out.append(r.json()["balances"])
    return out


def ledger_times(shop, kind: str) -> dict[str, datetime]:
    with shop.db.read() as s:
        rows = s.execute(
            select(LedgerEntry.order_id, LedgerEntry.at).where(LedgerEntry.kind == kind)
        ).all()
    first: dict[str, datetime] = {}
    for order_id, at in rows:
        first.setdefault(order_id, at)
    return first


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--attackers", type=int, default=4)
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--honest", type=int, default=6)
    p.add_argument("--diem", type=int, default=40)
    p.add_argument("--accounts", type=int, default=3)
    p.add_argument("--watch", type=float, default=10.0)
    p.add_argument("--out", default=str(pathlib.Path(__file__).with_name("results.json")))
    args = p.parse_args()

    admins = [f"VENICE_ADMIN_KEY_overshoot_bench_{i}_not_real" for i in range(args.accounts)]
    sandbox = Sandbox(
        [AccountSpec(admin_key=a, diem=Decimal(args.diem), usd=Decimal(100)) for a in admins],
        frozen=False,
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    with tempfile.TemporaryDirectory() as tmp, serve(sandbox.app, port):
        url = f"sqlite:///{tmp}/shop.db"
        migrate.upgrade(url)
        settings = Settings(
            database_url=url,
            data_dir=pathlib.Path(tmp),
            venice_base_url=base,
            venice_admin_keys=",".join(f"a{i}={k}" for i, k in enumerate(admins)),
            pool_size=0,
            repricing=False,
            watch_seconds=args.watch,
            worker_poll_seconds=0.05,
            max_held_share=Decimal(1),
        )
        shop = build_shop(settings, clock=sandbox.clock.now)
        refresh_accounts(db=shop.db, gateways=shop.gateways, clock=shop.clock)
        worker = Worker.for_shop(shop)
        stop_worker = threading.Event()
        threading.Thread(
            target=worker.run_forever, args=(stop_worker,), kwargs={"threads": 4}, daemon=True
        ).start()
        usd_before = [b["usd"] for b in balances(base, admins)]

        honest = [paid_order(shop, 500) for _ in range(args.honest)]
        attackers = [paid_order(shop, 100) for _ in range(args.attackers)]
        wait_fulfilled(shop, honest + attackers)
        models = shop.catalogue.text_models() or []
        worst = worst_call(models, private_only=True, max_completion_tokens=1)
        assert worst is not None
        print(
            f"attack: {args.attackers} keys of $1 × {args.parallel} parallel calls of "
            f"{worst.prompt_tokens:,} tokens on {worst.model_id} (${worst.cost:.2f} each)",
            flush=True,
        )
        honest_keys = [key_of(shop, o) for o in honest]
        stop_honest = threading.Event()
        spending: dict[str, int] = {}

        def spend() -> None:
            spending.update(asyncio.run(honest_spending(base, honest_keys, stop_honest)))

        spender = threading.Thread(target=spend, daemon=True)
        spender.start()
        started = datetime.now(UTC)
        codes = asyncio.run(
            attack(
                base,
                [key_of(shop, o) for o in attackers],
                worst.model_id,
                worst.prompt_tokens - 16,  # room for the message's own framing tokens
                args.parallel,
            )
        )
        attack_done = datetime.now(UTC)
        drained_at = attack_done  # the last attacker call was billed by now
        print(f"attack calls answered: {sorted(codes)} in {(attack_done - started).seconds} s")
        # Wait until every honest order is whole again (a working key or a refund).
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with shop.db.read() as s:
                states = {o: s.get(Order, o).status for o in honest}
            if all(v in ("fulfilled", "refunded") for v in states.values()) and not any(
                v == "replacing" for v in states.values()
            ):
                pending = ledger_times(shop, "replacement_started")
                done = ledger_times(shop, "key_replaced") | ledger_times(shop, "refunded")
                if all(o in done for o in pending if o in honest):
                    break
            time.sleep(1)
        time.sleep(2 * args.watch)  # let the watch settle usage after the last calls
        stop_honest.set()
        spender.join(timeout=30)
        stop_worker.set()

        detected = ledger_times(shop, "replacement_started")
        replaced = ledger_times(shop, "key_replaced")
        refunded = ledger_times(shop, "refunded")
        overshoot_cents = 0
        with shop.db.read() as s:
            for o in attackers:
                order = s.get(Order, o)
                overshoot_cents += max(0, (order.used_cents or 0) - order.key_cap_cents)
            attacker_paid = sum(s.get(Order, o).paid_cents or 0 for o in attackers)
            short = []
            for o in honest:
                order = s.get(Order, o)
                spent = order.spent_before_cents + min(order.used_cents or 0, order.key_cap_cents)
                if order.status == "fulfilled":
                    left_ok = order.key_cap_cents - min(order.used_cents or 0, order.key_cap_cents)
                    delivered = Decimal(spent + left_ok)
                else:  # refunded pro rata: the refund buys back the unusable credit at its price
                    due = Decimal(order.refund_due_cents or 0)
                    delivered = spent + due * order.credit_cents / max(1, order.paid_cents or 1)
                short.append(str(max(Decimal(0), order.credit_cents - delivered).quantize(CENT)))
        usd_after = [b["usd"] for b in balances(base, admins)]
        waits_detect = [(detected[o] - drained_at).total_seconds() for o in honest if o in detected]
        waits_whole = [
            ((replaced.get(o) or refunded.get(o)) - drained_at).total_seconds()
            for o in honest
            if o in detected and (o in replaced or o in refunded)
        ]
        result = {
            "attackers": args.attackers,
            "parallel_calls_each": args.parallel,
            "attack_model": worst.model_id,
            "attack_call_dollars": str(worst.cost),
            "accounts": args.accounts,
            "diem_per_account": args.diem,
            "watch_seconds": args.watch,
            "attack_status_codes": {str(c): codes.count(c) for c in sorted(set(codes))},
            "overshoot_cents": overshoot_cents,
            "attacker_paid_cents": attacker_paid,
            "overshoot_per_attacker_dollar": round(overshoot_cents / max(1, attacker_paid), 2),
            "honest_buyers": args.honest,
            "honest_replaced": sum(1 for o in honest if o in replaced),
            "honest_refunded": sum(1 for o in honest if o in refunded),
            "honest_short_cents": short,
            "detect_seconds_max": round(max(waits_detect), 1) if waits_detect else None,
            "whole_seconds_max": round(max(waits_whole), 1) if waits_whole else None,
            "usd_before": [str(u) for u in usd_before],
            "usd_after": [str(u) for u in usd_after],
            "honest_call_status_codes": spending,
        }
        shop.close()
    print(json.dumps(result, indent=2))
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
