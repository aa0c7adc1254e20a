"""Venice's model catalogue (``GET /models?type=text``, public on Venice), cached.

The buyer docs list the text models and their prices per million tokens from here. Like
:class:`~cheaptokens.venice.client.VeniceClient` it works over an injected
:class:`httpx.Client`; when Venice cannot be reached the last good list (or ``None``) is
returned, so a docs page never fails because of it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TextModel:
    id: str
    name: str
    context: int | None
    #: USD per million tokens (docs/venice-facts.md §3.4)
    input: Decimal | None
    output: Decimal | None
    privacy: str


def _price(spec: dict[str, Any], side: str) -> Decimal | None:
    value = spec.get("pricing", {}).get(side, {}).get("usd")
    return value if isinstance(value, Decimal) else None


def parse_text_models(body: Any) -> list[TextModel]:
    """The text models of a ``GET /models`` answer, sorted by id (malformed entries skipped)."""
    out = []
    for m in body.get("data", []) if isinstance(body, dict) else []:
        if not isinstance(m, dict) or not isinstance(m.get("id"), str):
            continue
        spec: dict[str, Any] = m["model_spec"] if isinstance(m.get("model_spec"), dict) else {}
        context = m.get("context_length") or spec.get("availableContextTokens")
        out.append(
            TextModel(
                id=m["id"],
                name=str(spec.get("name", "")),
                context=int(context) if isinstance(context, int | Decimal) else None,
                input=_price(spec, "input"),
                output=_price(spec, "output"),
                privacy=str(spec.get("privacy", "")),
            )
        )
    return sorted(out, key=lambda m: m.id)


class ModelCatalogue:
    """The text models, fetched at most once per ``ttl`` seconds (thread-safe)."""

    def __init__(
        self,
        http: httpx.Client,
        base_url: str,
        *,
        ttl: float = 300,
        timeout: float = 3.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.ttl = ttl
        self.timeout = timeout
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._at = 0.0
        self._models: list[TextModel] | None = None

    def text_models(self) -> list[TextModel] | None:
        with self._lock:
            if self._models is not None and self._monotonic() - self._at < self.ttl:
                return self._models
            fetched = self._fetch()
            if fetched is not None:
                self._models, self._at = fetched, self._monotonic()
            return self._models

    def _fetch(self) -> list[TextModel] | None:
        try:
            r = self.http.get(
                f"{self.base_url}/models", params={"type": "text"}, timeout=self.timeout
            )
            r.raise_for_status()
            return parse_text_models(json.loads(r.content, parse_float=Decimal))
        except (httpx.HTTPError, ValueError) as exc:
            log.info("model list unavailable: %s", type(exc).__name__)
            return None
