"""Venice's model catalogue (``GET /models?type=text``, public on Venice), cached.

The buyer docs list the text models and their prices per million tokens from here. Like
:class:`~cheaptokens.venice.client.VeniceClient` it works over an injected
:class:`httpx.Client`; when Venice cannot be reached the last good list (or ``None``) is
returned, so a docs page never fails because of it.

:func:`worst_call` bounds what one call can cost: Venice admits a call while a key is under
its cap and bills it after it ran (docs/venice-facts.md §2.3, §6 "Overshoot"), so a key
can overshoot its cap by up to that much per call in flight.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

log = logging.getLogger(__name__)


_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class ExtendedPricing:
    """Long-context rates (``pricing.extended``): when a call's input tokens exceed
    ``threshold``, ``input``/``output`` (USD per million) apply to the entire request
    (SPEC ``ModelResponse``; docs/venice-facts.md §3.4)."""

    threshold: int
    input: Decimal
    output: Decimal


@dataclass(frozen=True, slots=True)
class TextModel:
    id: str
    name: str
    #: ``availableContextTokens``: prompt + completion of one call
    context: int | None
    #: USD per million tokens (docs/venice-facts.md §3.4)
    input: Decimal | None
    output: Decimal | None
    privacy: str
    #: ``maxCompletionTokens`` when the catalogue gives it
    max_completion: int | None = None
    extended: ExtendedPricing | None = None


def _number(value: Any) -> Decimal | None:
    # JSON parsed with parse_float=Decimal gives int for whole prices ("output": 225).
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        return None
    return Decimal(value)


def _price(spec: dict[str, Any], side: str) -> Decimal | None:
    entry = spec.get("pricing", {}).get(side, {})
    return _number(entry.get("usd")) if isinstance(entry, dict) else None


def _extended(spec: dict[str, Any]) -> ExtendedPricing | None:
    raw = spec.get("pricing", {}).get("extended")
    if not isinstance(raw, dict):
        return None
    threshold = _number(raw.get("context_token_threshold"))
    prices = [
        _number(raw[side].get("usd")) if isinstance(raw.get(side), dict) else None
        for side in ("input", "output")
    ]
    if threshold is None or prices[0] is None or prices[1] is None:
        return None
    return ExtendedPricing(threshold=int(threshold), input=prices[0], output=prices[1])


def _count(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number > 0 else None


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
                max_completion=_count(spec.get("maxCompletionTokens")),
                extended=_extended(spec),
            )
        )
    return sorted(out, key=lambda m: m.id)


@dataclass(frozen=True, slots=True)
class WorstCall:
    """The dearest single call among a set of models, and how it is made."""

    model_id: str
    #: exact dollars (= DIEM), not rounded
    cost: Decimal
    prompt_tokens: int
    completion_tokens: int
    #: whether the extended long-context rates apply
    extended: bool
    #: models of the set that could not be bounded (no context window or no prices)
    unbounded: tuple[str, ...] = ()


def call_cost(model: TextModel, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """What Venice bills for one call (exact dollars): tokens x price per million, at the
    extended rates for the whole request once the prompt exceeds their threshold."""
    if model.input is None or model.output is None:
        raise ValueError(f"{model.id} has no prices")
    input_price, output_price = model.input, model.output
    if model.extended is not None and prompt_tokens > model.extended.threshold:
        input_price, output_price = model.extended.input, model.extended.output
    return (prompt_tokens * input_price + completion_tokens * output_price) / _MILLION


def worst_call_for(
    model: TextModel, *, max_completion_tokens: int | None = None
) -> WorstCall | None:
    """The dearest call ``model`` allows, or ``None`` if it cannot be bounded.

    A call uses ``prompt + completion <= context`` tokens (``availableContextTokens``);
    the completion is also at most ``maxCompletionTokens`` when the catalogue gives it,
    else ``max_completion_tokens`` when given (an assumption of the caller; ``0`` gives
    the dearest prompt alone), else only the window bounds it. The cost is linear in the
    tokens on each side of the extended threshold, so the maximum is at a corner: each
    side's ends and the point where the completion cap starts to bind.
    """
    context, base_in, base_out = model.context, model.input, model.output
    if context is None or base_in is None or base_out is None:
        return None
    cap = model.max_completion if model.max_completion is not None else max_completion_tokens
    most_out = context if cap is None else min(max(cap, 0), context)
    ext = model.extended
    ranges = [(0, context if ext is None else min(ext.threshold, context))]
    if ext is not None and ext.threshold < context:
        ranges.append((ext.threshold + 1, context))
    best: WorstCall | None = None
    for low, high in ranges:
        for prompt in sorted({low, high, min(max(context - most_out, low), high)}):
            completion = min(most_out, context - prompt)
            cost = call_cost(model, prompt, completion)
            if best is None or cost > best.cost:
                extended = ext is not None and prompt > ext.threshold
                best = WorstCall(model.id, cost, prompt, completion, extended)
    return best


def worst_call(
    models: Iterable[TextModel],
    *,
    private_only: bool = False,
    max_completion_tokens: int | None = None,
) -> WorstCall | None:
    """The most one call can cost on any of ``models`` (only ``privacy == "private"``
    ones with ``private_only``, e.g. for keys made with ``model_privacy="PRIVATE_TEXT"``),
    with the model that attains it (ties: the first id in order); ``None`` if no model of
    the set can be bounded. See :func:`worst_call_for` for ``max_completion_tokens``.
    """
    best: WorstCall | None = None
    unbounded: list[str] = []
    for model in sorted(models, key=lambda m: m.id):
        if private_only and model.privacy != "private":
            continue
        found = worst_call_for(model, max_completion_tokens=max_completion_tokens)
        if found is None:
            unbounded.append(model.id)
        elif best is None or found.cost > best.cost:
            best = found
    if best is None:
        return None
    return WorstCall(
        best.model_id,
        best.cost,
        best.prompt_tokens,
        best.completion_tokens,
        best.extended,
        tuple(unbounded),
    )


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
