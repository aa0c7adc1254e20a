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

from . import catalogue, chat_options, errors, structured
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


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call of the fake model; ``arg_pieces`` join to its ``arguments``."""

    id: str
    name: str
    arg_pieces: list[str]

    @property
    def arguments(self) -> str:
        return "".join(self.arg_pieces)

    @property
    def name_tokens(self) -> int:
        return catalogue.count_tokens(self.name)

    @property
    def tokens(self) -> int:
        """Completion tokens: the function's name and its arguments."""
        return self.name_tokens + len(self.arg_pieces)


@dataclass(frozen=True, slots=True)
class Choice:
    """One of the ``n`` choices: text (or JSON) pieces, or tool calls."""

    index: int
    pieces: list[str]
    finish_reason: str
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def content(self) -> str | None:
        return None if self.tool_calls else "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces) + sum(call.tokens for call in self.tool_calls)


@dataclass(frozen=True, slots=True)
class ChatPlan:
    """A validated chat request and its (deterministic) answer."""

    model: Model
    model_name: str
    stream: bool
    choices: list[Choice]
    prompt_tokens: int
    venice_parameters: dict[str, Any]

    @property
    def completion_tokens(self) -> int:
        """All choices' tokens: ``n`` choices are billed together (SPEC ``n``)."""
        return sum(choice.completion_tokens for choice in self.choices)

    @property
    def cost(self) -> Decimal:
        return self.model.cost(self.prompt_tokens, self.completion_tokens)


def _model(value: Any, want: str) -> Model:
    """The model a request names (feature suffix aside): an id, a trait or a compatibility
    mapping of type ``want``; 404 with the name otherwise (SK-ERR)."""
    name, _ = chat_options.split_model(value)
    model = catalogue.resolve_model(name, want)
    if model is None:
        raise errors.model_not_found(name)
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


def _definition_tokens(body: dict[str, Any], fmt: chat_options.ResponseFormat) -> int:
    """Tool definitions and a response schema are part of the prompt the model reads (and
    is billed for): their JSON text's tokens (sandbox rule)."""
    tokens = 0
    if body.get("tools"):
        tokens += catalogue.count_tokens(structured.json_text(body["tools"]))
    if fmt.type == "json_schema":
        tokens += catalogue.count_tokens(structured.json_text(fmt.schema))
    return tokens


def plan_chat(body: Any) -> ChatPlan:
    """Validate a chat body (strict top level, docs/venice-facts.md §3.1) and compute the reply."""
    body = require_fields(body, CHAT_FIELDS, ("model", "messages"))
    model = _model(body["model"], "text")
    _, suffix = chat_options.split_model(body["model"])
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
    n = chat_options.parse_n(body)
    stop = chat_options.parse_stop(body)
    chat_options.check_sampling_fields(body, model)
    params = chat_options.venice_parameters(body.get("venice_parameters"), suffix)
    fmt = chat_options.parse_response_format(body, model)
    tools = chat_options.parse_tools(body, model)
    prompt_tokens = catalogue.count_prompt_tokens(messages) + _definition_tokens(body, fmt)
    if model.context is not None:
        # The context window holds prompt + completion (docs/venice-facts.md §3.4, §4.1).
        if prompt_tokens > model.context:
            raise errors.context_length_exceeded(model.context, prompt_tokens)
        room = model.context - prompt_tokens
        max_tokens = room if max_tokens is None else min(max_tokens, room)
    choices = [_choice(model, messages, i, max_tokens, stop, fmt, tools) for i in range(n)]
    return ChatPlan(
        model=model,
        model_name=body["model"],
        stream=stream,
        choices=choices,
        prompt_tokens=prompt_tokens,
        venice_parameters=params,
    )


def _last_text(messages: list[dict[str, Any]], role: str) -> str:
    for message in reversed(messages):
        if message.get("role") == role:
            return catalogue.message_text(message.get("content"))
    return ""


def pick_tool(
    tools: chat_options.Tools, messages: list[dict[str, Any]]
) -> chat_options.Tool | None:
    """The function the fake model calls, or None for a text answer (docs/sandbox.md
    "Tools"): a named ``tool_choice`` calls that function; ``required`` and ``auto`` call
    the first function whose name the last user message mentions (case-insensitive), else
    the first function, except that ``auto`` answers in text once the last message is a
    tool result; ``none`` (or no function tools) answers in text."""
    if not tools.functions or tools.choice == "none":
        return None
    if tools.choice == "function":
        return next(f for f in tools.functions if f.name == tools.named)
    if tools.choice == "auto" and messages[-1].get("role") == "tool":
        return None
    asked = _last_text(messages, "user").lower()
    return next((f for f in tools.functions if f.name.lower() in asked), tools.functions[0])


def _apply_stop(pieces: list[str], stop: tuple[str, ...]) -> tuple[list[str], bool]:
    """Cut the text before the first stop sequence it contains (the sequence is not
    included, as OpenAI does); the pieces are re-split so each is still one token."""
    text = "".join(pieces)
    hits = [text.find(s) for s in stop if s in text]
    if not hits:
        return pieces, False
    kept = text[: min(hits)]
    out = catalogue.split_pieces(kept)
    trailing = kept[len(kept.rstrip()) :]
    if out and trailing:
        out[-1] += trailing
    return out, True


def _choice(
    model: Model,
    messages: list[dict[str, Any]],
    index: int,
    max_tokens: int | None,
    stop: tuple[str, ...],
    fmt: chat_options.ResponseFormat,
    tools: chat_options.Tools,
) -> Choice:
    seed = catalogue.reply_seed(model.id, messages, index)
    tool = pick_tool(tools, messages)
    if tool is not None:
        schema = tool.parameters if isinstance(tool.parameters, dict) else {"type": "object"}
        arguments = structured.json_text(structured.synthesise(schema, seed + b"tool"))
        pieces = catalogue.split_pieces(arguments)
        finish = "tool_calls"
        if max_tokens is not None:
            room = max(0, max_tokens - catalogue.count_tokens(tool.name))
            if room < len(pieces):
                pieces, finish = pieces[:room], "length"
        ident = "call_" + hashlib.sha256(seed + tool.name.encode()).hexdigest()[:24]
        return Choice(index, [], finish, (ToolCall(ident, tool.name, pieces),))
    if fmt.type == "json_schema":
        schema = fmt.schema or {"type": "object"}  # no schema given: some JSON object
        pieces = catalogue.split_pieces(structured.json_text(structured.synthesise(schema, seed)))
    else:
        pieces, _ = catalogue.generate_reply(model.id, messages, None, index)
        if fmt.type == "json_object":
            answer = {"answer": "".join(pieces)}
            pieces = catalogue.split_pieces(structured.json_text(answer))
    pieces, _ = _apply_stop(pieces, stop)
    if max_tokens is not None and max_tokens < len(pieces):
        return Choice(index, pieces[:max_tokens], "length")
    return Choice(index, pieces, "stop")


def chat_id(plan: ChatPlan, now: datetime) -> str:
    text = [(c.pieces, [t.arguments for t in c.tool_calls]) for c in plan.choices]
    digest = hashlib.sha256(f"{now.isoformat()}{text}".encode()).hexdigest()
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


def _tool_call_json(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
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
                "index": choice.index,
                "finish_reason": choice.finish_reason,
                "logprobs": None,
                # docs/venice-facts.md §3.2 shows "stop_reason": null, but the SPEC declares it
                # a nullable
                # enum of "stop"/"length" without null, which strict OpenAPI 3.0 validators
                # reject; the field is optional, so the sandbox leaves it out.
                "message": {
                    "role": "assistant",
                    "content": choice.content,
                    "reasoning_content": None,
                    "tool_calls": [_tool_call_json(c) for c in choice.tool_calls],
                },
            }
            for choice in plan.choices
        ],
        "usage": usage_json(plan),
        "cost": cost_json(plan.cost, currency),
        "prompt_logprobs": None,
        "venice_parameters": {**plan.venice_parameters, "web_search_citations": []},
    }


@dataclass(frozen=True, slots=True)
class ChatStream:
    """The SSE chunks of a streamed answer: ``head`` (the role chunk of every choice),
    ``pieces`` (one chunk per generated token group, with its token count) and ``tail``
    (each choice's finish chunk, then the ``choices: []`` usage and cost chunk)."""

    head: list[dict[str, Any]]
    pieces: list[tuple[dict[str, Any], int]]
    tail: list[dict[str, Any]]


def chat_chunks(plan: ChatPlan, *, ident: str, created: int, currency: str) -> ChatStream:
    """SSE chunks (docs/venice-facts.md §3.3) in OpenAI's ``chat.completion.chunk`` format:
    text as ``delta.content`` pieces; a tool call as a first ``delta.tool_calls`` entry with
    its id, type and name (and empty arguments), then its arguments piece by piece; the
    choices one after the other; the final ``choices: []`` chunk with usage and cost is
    sent whatever ``include_usage`` says."""
    base = {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": plan.model.id,
    }

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **base,
            "choices": [
                {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
            ],
        }

    head = [
        chunk(c.index, {"role": "assistant", "content": "" if not c.tool_calls else None})
        for c in plan.choices
    ]
    pieces: list[tuple[dict[str, Any], int]] = []
    for c in plan.choices:
        pieces += [(chunk(c.index, {"content": piece}), 1) for piece in c.pieces]
        for k, call in enumerate(c.tool_calls):
            opening = {
                "index": k,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            pieces.append((chunk(c.index, {"tool_calls": [opening]}), call.name_tokens))
            pieces += [
                (chunk(c.index, {"tool_calls": [{"index": k, "function": {"arguments": p}}]}), 1)
                for p in call.arg_pieces
            ]
    tail = [chunk(c.index, {}, c.finish_reason) for c in plan.choices]
    tail.append(
        {**base, "choices": [], "usage": usage_json(plan), "cost": cost_json(plan.cost, currency)}
    )
    return ChatStream(head, pieces, tail)


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
    model = _model(body["model"], "embedding")  # a feature suffix is ignored here
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
