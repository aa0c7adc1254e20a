"""Chat completions and embeddings: validate, generate, price.

These functions build the answer; the caller (``routes``) admits the call before and
bills it after, under the ledger lock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from . import catalogue, errors
from .catalogue import Model
from .validation import fail, require_fields

# Top-level fields of ChatCompletionRequest in the SPEC, plus ``anon_user_id`` which
# SK-CHAT documents and the SPEC lacks (docs/venice-facts.md §3.1: the fact sheet wins).
CHAT_FIELDS = (
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "max_completion_tokens",
    "max_temp",
    "max_tokens",
    "messages",
    "min_p",
    "min_temp",
    "model",
    "n",
    "presence_penalty",
    "prompt_cache_key",
    "prompt_cache_retention",
    "repetition_penalty",
    "reasoning",
    "reasoning_effort",
    "seed",
    "stop",
    "stop_token_ids",
    "stream",
    "stream_options",
    "temperature",
    "top_k",
    "top_p",
    "user",
    "fallbacks",
    "store",
    "verbosity",
    "text",
    "include",
    "metadata",
    "venice_parameters",
    "parallel_tool_calls",
    "response_format",
    "tool_choice",
    "tools",
    "anon_user_id",
)
EMBEDDING_FIELDS = ("model", "input", "encoding_format", "dimensions", "user")
ROLES = ("system", "developer", "user", "assistant", "tool")
VENICE_PARAMETER_DEFAULTS: dict[str, Any] = {
    "enable_e2ee": True,
    "enable_web_search": "off",
    "enable_web_citations": False,
    "enable_web_scraping": False,
    "include_venice_system_prompt": True,
    "include_search_results_in_stream": False,
    "return_search_results_as_documents": False,
    "strip_thinking_response": False,
    "disable_thinking": False,
}


@dataclass(frozen=True, slots=True)
class ChatPlan:
    """A validated chat request and its (deterministic) answer."""

    model: Model
    model_name: str
    stream: bool
    pieces: list[str]
    finish_reason: str
    prompt_tokens: int
    venice_parameters: dict[str, Any]

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces)

    @property
    def cost(self) -> Decimal:
        return self.model.cost(self.prompt_tokens, self.completion_tokens)


def _model(name: Any, want: str) -> Model:
    if not isinstance(name, str) or not name:
        raise fail(["model"], "Expected string")
    model = catalogue.find_model(name)
    if model is None:
        raise errors.standard(404, errors.MODEL_NOT_FOUND)
    if model.type != want:
        raise fail(["model"], f"Model {name} is not a {want} model")
    return model


def check_privacy(model: Model, key_privacy: str) -> None:
    """A key restricted to private models may not call an anonymized one: 403
    (docs/venice-facts.md §4.3). Checked at admission, before anything is billed."""
    if catalogue.privacy_forbids(model.type, model.anonymized, key_privacy):
        raise errors.standard(403, errors.model_privacy_message(key_privacy, model.id))


def _positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise fail([name], "Expected a positive integer")
    return value


def plan_chat(body: Any) -> ChatPlan:
    """Validate a chat body (strict top level, docs/venice-facts.md §3.1) and compute the reply."""
    body = require_fields(body, CHAT_FIELDS, ("model", "messages"))
    model = _model(body["model"], "text")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise fail(["messages"], "Expected a non-empty array")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise fail(["messages", i, "role"], "Invalid message role")
    max_tokens = _positive_int(body, "max_completion_tokens") or _positive_int(body, "max_tokens")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise fail(["stream"], "Expected boolean")
    raw_params = body.get("venice_parameters") or {}
    if not isinstance(raw_params, dict):
        raise fail(["venice_parameters"], "Expected object")
    # Unknown keys inside venice_parameters are dropped, not rejected (docs/venice-facts.md §3.1).
    params = {k: raw_params.get(k, v) for k, v in VENICE_PARAMETER_DEFAULTS.items()}
    prompt_tokens = catalogue.count_prompt_tokens(messages)
    if model.context is not None:
        # The context window holds prompt + completion (docs/venice-facts.md §3.4, §4.1).
        if prompt_tokens > model.context:
            raise errors.context_length_exceeded(model.context, prompt_tokens)
        room = model.context - prompt_tokens
        max_tokens = room if max_tokens is None else min(max_tokens, room)
    pieces, finish = catalogue.generate_reply(model.id, messages, max_tokens)
    return ChatPlan(
        model=model,
        model_name=body["model"],
        stream=stream,
        pieces=pieces,
        finish_reason=finish,
        prompt_tokens=prompt_tokens,
        venice_parameters=params,
    )


def chat_id(plan: ChatPlan, now: datetime) -> str:
    digest = hashlib.sha256(f"{now.isoformat()}{plan.pieces}".encode()).hexdigest()
    return "chatcmpl-" + digest[:29]


def usage_json(plan: ChatPlan) -> dict[str, Any]:
    return {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": plan.completion_tokens,
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    }


def cost_json(amount: Decimal, currency: str) -> dict[str, Decimal]:
    """The charge split by currency (docs/venice-facts.md §3.2): one side carries it all."""
    zero = Decimal(0)
    return {
        "usd": amount if currency == "USD" else zero,
        "diem": amount if currency == "DIEM" else zero,
    }


def chat_response(plan: ChatPlan, *, ident: str, created: int, currency: str) -> dict[str, Any]:
    """The non-streaming body (docs/venice-facts.md §3.2)."""
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": plan.model.id,
        "choices": [
            {
                "index": 0,
                "finish_reason": plan.finish_reason,
                "logprobs": None,
                # docs/venice-facts.md §3.2 shows "stop_reason": null, but the SPEC declares it
                # a nullable
                # enum of "stop"/"length" without null, which strict OpenAPI 3.0 validators
                # reject; the field is optional, so the sandbox leaves it out.
                "message": {
                    "role": "assistant",
                    "content": "".join(plan.pieces),
                    "reasoning_content": None,
                    "tool_calls": [],
                },
            }
        ],
        "usage": usage_json(plan),
        "cost": cost_json(plan.cost, currency),
        "prompt_logprobs": None,
        "venice_parameters": {**plan.venice_parameters, "web_search_citations": []},
    }


def chat_chunks(plan: ChatPlan, *, ident: str, created: int, currency: str) -> list[dict[str, Any]]:
    """SSE chunks (docs/venice-facts.md §3.3): role, one per token piece, the finish, then the final
    ``choices: []`` chunk with usage and cost (sent whatever ``include_usage`` says)."""
    base = {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": plan.model.id,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **base,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": piece}) for piece in plan.pieces]
    out.append(chunk({}, plan.finish_reason))
    out.append(
        {**base, "choices": [], "usage": usage_json(plan), "cost": cost_json(plan.cost, currency)}
    )
    return out


@dataclass(frozen=True, slots=True)
class EmbeddingPlan:
    model: Model
    inputs: list[str]
    dimensions: int
    encoding: str
    prompt_tokens: int

    @property
    def cost(self) -> Decimal:
        return self.model.cost(self.prompt_tokens, 0)


def plan_embeddings(body: Any) -> EmbeddingPlan:
    """Validate an embeddings body (docs/venice-facts.md §3.5)."""
    body = require_fields(body, EMBEDDING_FIELDS, ("model", "input"))
    model = _model(body["model"], "embedding")
    raw = body["input"]
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not 1 <= len(inputs) <= 2048:
        raise fail(["input"], "Expected a string or an array of 1 to 2048 strings")
    for i, item in enumerate(inputs):
        if not isinstance(item, str):  # token arrays are not supported
            raise fail(["input", i], "Expected string")
        if not item:
            raise fail(["input", i], "String must contain at least 1 character(s)")
        if catalogue.count_tokens(item) > 8192:
            raise fail(["input", i], "Input exceeds the 8192 token limit")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise fail(["encoding_format"], "Expected 'float' | 'base64'")
    spec = model.raw["model_spec"]
    dims = _positive_int(body, "dimensions") or int(
        spec.get("embeddingDimensions", catalogue.DEFAULT_EMBEDDING_DIMENSIONS)
    )
    tokens = sum(max(1, catalogue.count_tokens(t)) for t in inputs)
    return EmbeddingPlan(model, inputs, dims, encoding, tokens)


def embeddings_response(plan: EmbeddingPlan) -> dict[str, Any]:
    data = []
    for index, text in enumerate(plan.inputs):
        vector = catalogue.embed(text, plan.dimensions)
        value: Any = catalogue.embedding_base64(vector) if plan.encoding == "base64" else vector
        data.append({"object": "embedding", "index": index, "embedding": value})
    return {
        "object": "list",
        "model": plan.model.id,
        "data": data,
        "usage": {"prompt_tokens": plan.prompt_tokens, "total_tokens": plan.prompt_tokens},
    }
