"""Small key-management recipes on top of :class:`~cheaptokens.venice.types.VeniceGateway`."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from cheaptokens.venice.errors import NotFound
from cheaptokens.venice.limits import CREATIONS_PER_MINUTE, MAX_ACTIVE_KEYS
from cheaptokens.venice.types import VeniceGateway

log = logging.getLogger(__name__)


def ensure_deleted(gateway: VeniceGateway, key_id: str) -> None:
    """Revoke a key; one that is already gone counts as done (Venice answers "not found"
    for deleted keys and hides expired ones, docs/venice-facts.md §6). Other Venice errors
    propagate."""
    with contextlib.suppress(NotFound):
        gateway.delete_key(key_id)


def delete_described(gateway: VeniceGateway, description: str) -> list[str]:
    """Delete every key whose description is exactly ``description``; their ids.

    Used to clean up after a creation whose answer never reached the shop: the secret
    exists only in that lost answer, so such a key is useless and must not stay alive.
    """
    gone = []
    for key in gateway.list_keys():
        if key.description == description:
            ensure_deleted(gateway, key.id)
            log.warning("deleted orphaned key %s (its secret was never stored)", key.id)
            gone.append(key.id)
    return gone


@dataclass(frozen=True, slots=True)
class KeyCount:
    """An account's live keys against Venice's cap, and creations in the last minute."""

    account: str
    active: int | None  # None: Venice could not be asked
    created_last_minute: int | None
    error: str | None = None
    cap: int = MAX_ACTIVE_KEYS
    per_minute: int = CREATIONS_PER_MINUTE
