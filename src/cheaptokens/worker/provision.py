"""The worker's provisioning job: :func:`cheaptokens.orders.keymaking.provision`.

The steps live in :mod:`cheaptokens.orders.keymaking` so that a request a buyer waits on (an
x402 purchase, ``POST /api/buy``) runs exactly the same code under the same job lease; the
worker runs them for every paid order whose key is not made yet, and takes over a request's
job when its lease lapses.
"""

from __future__ import annotations

from cheaptokens.orders.keymaking import key_limit, provision

__all__ = ["key_limit", "provision"]
