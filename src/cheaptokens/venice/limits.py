"""Venice's published per-account limits on key management (docs/venice-facts.md §1.7).

The client, the shop's provisioning and the sandbox all read them from here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

#: ``POST /api_keys`` is limited to 20 creations per minute per account: the 21st gets 429.
CREATIONS_PER_MINUTE: Final = 20
#: The sliding window of that limit.
CREATION_WINDOW: Final = timedelta(minutes=1)
#: At most 500 active (non-expired) keys per account: the 501st creation gets 400.
MAX_ACTIVE_KEYS: Final = 500
