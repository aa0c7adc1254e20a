"""Per-account upkeep runs for every account at once, and one account's failure stops no other."""

from __future__ import annotations

import threading
import time
from typing import Any

from cheaptokens.worker.accounts import each_account


def test_accounts_are_worked_on_at_once_up_to_the_limit() -> None:
    lock, running, most = threading.Lock(), [0], [0]

    def work(name: str, _gateway: Any) -> str:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)  # a Venice call's latency: lets the others start meanwhile
        with lock:
            running[0] -= 1
        return name.upper()

    gateways = {f"a{i:02d}": object() for i in range(12)}
    assert each_account(gateways, work, parallel=4) == {n: n.upper() for n in gateways}
    assert most[0] == 4
    most[0] = 0
    each_account(gateways, work, parallel=1)
    assert most[0] == 1


def test_one_accounts_failure_is_left_out_and_the_others_finish() -> None:
    def work(name: str, _gateway: Any) -> int:
        if name == "b":
            raise RuntimeError("Venice answered nonsense")
        return len(name)

    for parallel in (1, 3):
        assert each_account({"a": 1, "b": 2, "cc": 3}, work, parallel=parallel) == {  # type: ignore[arg-type]
            "a": 1,
            "cc": 2,
        }
