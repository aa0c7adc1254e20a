"""What the shop can sell: credit per account and day (:mod:`.capacity`), the room each
account has for one more key (:mod:`.keyroom`) and keys made ahead of sales (:mod:`.pool`).

Nothing here commits; callers own the transaction.
"""

from cheaptokens.inventory.capacity import (
    Capacity,
    Supply,
    capacity,
    day_capacity,
    ensure_day,
    follow_balance,
    record_allocation,
    record_balance,
    record_key_counts,
    release,
    reserve,
    sell,
    sell_unreserved,
    supply,
    unsell,
)

__all__ = [
    "Capacity",
    "Supply",
    "capacity",
    "day_capacity",
    "ensure_day",
    "follow_balance",
    "record_allocation",
    "record_balance",
    "record_key_counts",
    "release",
    "reserve",
    "sell",
    "sell_unreserved",
    "supply",
    "unsell",
]
