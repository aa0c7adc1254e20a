"""Per-account Venice work, run for every account at once.

Venice's limits are per account (20 key creations a minute, requests and tokens per minute
per model), so accounts can be worked on concurrently without one's calls counting against
another's: upkeep with fifty accounts then takes about as long as with one. Each account's
work opens its own short transactions, which the callers run one at a time
(:meth:`cheaptokens.db.Database.one_writer`); an account that fails is logged and left for
the next round, and never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from cheaptokens.venice.types import VeniceGateway

log = logging.getLogger(__name__)
T = TypeVar("T")


def each_account(
    gateways: Mapping[str, VeniceGateway],
    work: Callable[[str, VeniceGateway], T],
    *,
    parallel: int = 1,
) -> dict[str, T]:
    """``work(name, gateway)`` for every account, up to ``parallel`` at once; the results of
    the accounts that finished (an account whose work raised is logged and left out)."""
    items = sorted(gateways.items())

    def guarded(item: tuple[str, VeniceGateway]) -> tuple[str, T] | None:
        name, gateway = item
        try:
            return name, work(name, gateway)
        except Exception:  # one account's failure must not stop the others; it runs again
            log.exception("account %s: upkeep failed", name)
            return None

    if parallel <= 1 or len(items) <= 1:
        outcomes = [guarded(item) for item in items]
    else:
        with ThreadPoolExecutor(max_workers=min(parallel, len(items))) as pool:
            outcomes = list(pool.map(guarded, items))
    return dict(o for o in outcomes if o is not None)
