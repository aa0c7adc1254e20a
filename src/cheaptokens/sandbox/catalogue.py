"""The model catalogue and the fake model behind it.

``models.json`` is Venice's own static catalogue (a bare array, wrapper fields
stripped); :func:`list_models` adds back what the live ``GET /models`` carries
(docs/venice-facts.md §3.4). The "model" is deterministic: its reply is drawn from a hash of the
model id and the messages, so the same prompt always yields the same text and the
same bill.

Tokenizer (documented in docs/sandbox.md): a token is a run of word characters or
one other non-space character (regex ``\\w+|[^\\w\\s]``). A chat prompt counts the
role and the text content of each message plus 3 framing tokens per message.
Real Venice models use BPE tokenizers; only the *counting rule* differs, the
billing arithmetic (tokens x published price per million) is the same.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib import resources
from typing import Any

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
MESSAGE_FRAMING_TOKENS = 3
#: Costs are kept to 8 decimal places (1/100 of a micro-dollar).
COST_QUANTUM = Decimal("0.00000001")
MODEL_TYPES = ("asr", "embedding", "image", "music", "text", "tts", "upscale", "inpaint", "video")
DEFAULT_EMBEDDING_DIMENSIONS = 1024

_WORDS = [
    "venice",
    "sandbox",
    "token",
    "credit",
    "model",
    "answer",
    "river",
    "bridge",
    "lantern",
    "quiet",
    "amber",
    "signal",
    "harbor",
    "meadow",
    "copper",
    "window",
    "orbit",
    "garden",
    "pixel",
    "marble",
    "summit",
    "canvas",
    "ember",
    "willow",
    "falcon",
    "prism",
    "cobalt",
    "velvet",
    "anchor",
    "compass",
    "thistle",
    "glacier",
]


@dataclass(frozen=True, slots=True)
class Tier:
    """A rate-limit size tier (docs/venice-facts.md §5.2, the post-snapshot enforced values)."""

    name: str
    rpm: int
    tpm: int


TIERS = {
    "XS": Tier("XS", 500, 5_000_000),
    "S": Tier("S", 150, 3_000_000),
    "M": Tier("M", 100, 2_000_000),
    "L": Tier("L", 100, 2_000_000),
}


@dataclass(frozen=True, slots=True)
class Extended:
    """Long-context pricing: when a call's input tokens exceed ``threshold``, these rates
    apply to the entire request (SPEC ``pricing.extended``; docs/venice-facts.md §3.4)."""

    threshold: int
    input_price: Decimal
    output_price: Decimal


@dataclass(frozen=True, slots=True)
class Model:
    """One catalogue entry the sandbox can price."""

    id: str
    type: str
    raw: dict[str, Any]
    input_price: Decimal  # USD (= DIEM) per million input tokens
    output_price: Decimal  # USD (= DIEM) per million output tokens
    extended: Extended | None = None
    #: ``availableContextTokens``: prompt + completion tokens one call may use (text only)
    context: int | None = None

    @property
    def anonymized(self) -> bool:
        return bool(self.raw["model_spec"].get("privacy") == "anonymized")

    def capability(self, name: str) -> bool:
        """A ``model_spec.capabilities`` flag (false when absent)."""
        return bool(self.raw["model_spec"].get("capabilities", {}).get(name))

    @property
    def tier(self) -> Tier:
        """Size tier. models.json does not carry it, so the sandbox derives it from
        the output price (a documented stand-in): embeddings and < $1/M are XS,
        < $3/M S, < $8/M M, the rest L."""
        if self.type == "embedding" or self.output_price < 1:
            return TIERS["XS"]
        if self.output_price < 3:
            return TIERS["S"]
        if self.output_price < 8:
            return TIERS["M"]
        return TIERS["L"]

    def rates(self, prompt_tokens: int) -> tuple[Decimal, Decimal]:
        """Input and output price per million for a call with ``prompt_tokens`` of input:
        the extended rates once the input exceeds the threshold, else the base rates."""
        if self.extended is not None and prompt_tokens > self.extended.threshold:
            return self.extended.input_price, self.extended.output_price
        return self.input_price, self.output_price

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """Tokens x published price per million (extended rates for the whole request
        above the threshold), rounded half-up to 8 decimals."""
        million = Decimal(1_000_000)
        input_price, output_price = self.rates(prompt_tokens)
        raw = (prompt_tokens * input_price + completion_tokens * output_price) / million
        return raw.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


@cache
def _raw_catalogue() -> tuple[dict[str, Any], ...]:
    text = resources.files(__package__).joinpath("models.json").read_text(encoding="utf-8")
    entries: list[dict[str, Any]] = json.loads(text)
    return tuple(entries)


def _usd(entry: Any) -> Decimal:
    value = entry.get("usd") if isinstance(entry, dict) else None
    return Decimal(str(value)) if value is not None else Decimal(0)


def _price(spec: dict[str, Any], part: str) -> Decimal:
    return _usd(spec.get("pricing", {}).get(part, {}))


def _extended(spec: dict[str, Any]) -> Extended | None:
    raw = spec.get("pricing", {}).get("extended")
    if not isinstance(raw, dict) or raw.get("context_token_threshold") is None:
        return None
    return Extended(
        threshold=int(raw["context_token_threshold"]),
        input_price=_usd(raw.get("input")),
        output_price=_usd(raw.get("output")),
    )


@cache
def models_by_id() -> dict[str, Model]:
    """Every catalogue entry by id."""
    out: dict[str, Model] = {}
    for raw in _raw_catalogue():
        spec = raw["model_spec"]
        out[raw["id"]] = Model(
            id=raw["id"],
            type=raw["type"],
            raw=raw,
            input_price=_price(spec, "input"),
            output_price=_price(spec, "output"),
            extended=_extended(spec),
            context=int(spec["availableContextTokens"])
            if raw["type"] == "text" and spec.get("availableContextTokens")
            else None,
        )
    return out


#: Model types a ``PRIVATE_TEXT`` key may only use privately (sandbox reading of
#: docs/venice-facts.md §1.2/§3.5: text, and embeddings per SK-EMB); ``PRIVATE_ONLY``
#: restricts every type.
PRIVATE_TEXT_TYPES = ("text", "embedding")
KEY_PRIVACY = ("ALL", "PRIVATE_TEXT", "PRIVATE_ONLY")


def privacy_forbids(model_type: str, anonymized: bool, key_privacy: str) -> bool:
    """Whether a key with ``modelPrivacy`` = ``key_privacy`` may not use an (anonymized)
    model of ``model_type`` (docs/venice-facts.md §4.3)."""
    if not anonymized or key_privacy == "ALL":
        return False
    return key_privacy == "PRIVATE_ONLY" or model_type in PRIVATE_TEXT_TYPES


def find_model(model_id: str) -> Model | None:
    """Look a model id up, ignoring a ``:key=value`` feature suffix (docs/venice-facts.md §3.1)."""
    return models_by_id().get(model_id.split(":", 1)[0])


#: ``GET /models/compatibility_mapping`` per model type. Venice does not publish its live
#: table; the sandbox serves the examples its documents give: the SPEC's
#: ``ModelCompatibilitySchema`` example (``gpt-4o``) and SK-MODELS' vendor-style alias
#: (``gpt-5-4-pro``). Every target is a catalogue id (checked by the tests).
COMPATIBILITY_MAPPING: dict[str, dict[str, str]] = {
    "text": {
        "gpt-4o": "zai-org-glm-5-1",
        "gpt-5-4-pro": "openai-gpt-54-pro",
    },
}


def traits(model_type: str, key_privacy: str = "ALL") -> dict[str, str]:
    """``GET /models/traits``: each trait of the ``model_type`` models (``model_spec.traits``
    in the catalogue) and the model carrying it. Where two models carry the same trait the
    first in catalogue order wins (sandbox reading). A key with restricted ``modelPrivacy``
    sees only traits whose model it may call (SK-KEYS)."""
    out: dict[str, str] = {}
    for model in models_by_id().values():
        if model.type != model_type:
            continue
        if privacy_forbids(model.type, model.anonymized, key_privacy):
            continue
        for trait in model.raw["model_spec"].get("traits", []):
            out.setdefault(str(trait), model.id)
    return out


def compatibility_mapping(model_type: str, key_privacy: str = "ALL") -> dict[str, str]:
    """``GET /models/compatibility_mapping``: alias → model id for ``model_type`` (filtered
    by the key's ``modelPrivacy`` like :func:`traits`)."""
    models = models_by_id()
    return {
        alias: target
        for alias, target in COMPATIBILITY_MAPPING.get(model_type, {}).items()
        if not privacy_forbids(model_type, models[target].anonymized, key_privacy)
    }


def _normalised(name: str) -> str:
    return re.sub(r"[._ ]", "-", name.strip().lower())


@cache
def _by_normalised_id() -> dict[str, Model]:
    out: dict[str, Model] = {}
    for model in models_by_id().values():
        out.setdefault(_normalised(model.id), model)
    return out


def resolve_model(name: str, model_type: str) -> Model | None:
    """The catalogue model a request's ``model`` (without its feature suffix) names: a
    model id, else a trait of ``model_type``, else a compatibility mapping of that type
    (SPEC ``ChatCompletionRequest.model``), else an id found by SK-CHAT's lenient lookup
    (case, dots/underscores/spaces read as dashes, a leading ``venice-`` dropped)."""
    models = models_by_id()
    if name in models:
        return models[name]
    target = traits(model_type).get(name) or COMPATIBILITY_MAPPING.get(model_type, {}).get(name)
    if target is not None:
        return models[target]
    lenient = _by_normalised_id()
    key = _normalised(name)
    return lenient.get(key) or lenient.get(key.removeprefix("venice-"))


def list_models(model_type: str, key_privacy: str = "ALL") -> list[dict[str, Any]]:
    """Entries for ``GET /models?type=...`` with the wrapper fields added back; a key with
    restricted ``modelPrivacy`` sees only the models it may call (docs/venice-facts.md §3.4)."""
    out = []
    for raw in _raw_catalogue():
        spec = raw["model_spec"]
        if privacy_forbids(raw["type"], spec.get("privacy") == "anonymized", key_privacy):
            continue
        if model_type == "code":
            if raw["type"] != "text" or not spec.get("capabilities", {}).get("optimizedForCode"):
                continue
        elif model_type != "all" and raw["type"] != model_type:
            continue
        entry: dict[str, Any] = {
            "created": raw["created"],
            "id": raw["id"],
            "model_spec": spec,
            "object": "model",
            "owned_by": "venice.ai",
            "type": raw["type"],
        }
        if raw["type"] == "text" and "availableContextTokens" in spec:
            entry["context_length"] = spec["availableContextTokens"]
        out.append(entry)
    return out


def count_tokens(text: str) -> int:
    """Tokens in ``text`` under the sandbox tokenizer."""
    return len(TOKEN_RE.findall(text))


def message_text(content: Any) -> str:
    """The text of a message's ``content`` (a string or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"] for part in content if isinstance(part, dict) and "text" in part
        )
    return ""


def _tool_calls_text(message: dict[str, Any]) -> str:
    """The function names and arguments of an assistant message's ``tool_calls``."""
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return ""
    parts = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts += [str(function.get("name", "")), str(function.get("arguments", ""))]
    return " ".join(parts)


def count_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens: role + content text (+ the tool calls of an assistant message) +
    framing, per message."""
    return sum(
        count_tokens(str(m.get("role", "")))
        + count_tokens(message_text(m.get("content")))
        + count_tokens(_tool_calls_text(m))
        + MESSAGE_FRAMING_TOKENS
        for m in messages
    )


def reply_seed(model_id: str, messages: list[dict[str, Any]], variant: int = 0) -> bytes:
    """The hash every deterministic choice of one reply is drawn from; ``variant`` tells
    the choices of an ``n > 1`` request apart (0 is the first choice)."""
    parts: list[Any] = [model_id, messages] if variant == 0 else [model_id, messages, variant]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()


_PIECE_RE = re.compile(r"\s*(?:\w+|[^\w\s])")


def split_pieces(text: str) -> list[str]:
    """``text`` as token pieces (each token with the whitespace before it): joined they
    give ``text`` back (less trailing whitespace), and there are :func:`count_tokens` of
    them."""
    return _PIECE_RE.findall(text)


def generate_reply(
    model_id: str, messages: list[dict[str, Any]], max_tokens: int | None, variant: int = 0
) -> tuple[list[str], str]:
    """The reply as token pieces, and its finish reason.

    The natural reply is 8-31 words and a full stop, chosen by a hash of the model
    and the messages (and ``variant``, for the further choices of an ``n > 1`` request).
    ``max_tokens`` cuts it short with ``finish_reason="length"``.
    Joining the pieces gives text whose :func:`count_tokens` equals ``len(pieces)``.
    """
    seed = reply_seed(model_id, messages, variant)
    n_words = 8 + seed[0] % 24
    pieces = []
    for i in range(n_words):
        word = _WORDS[seed[(i + 1) % len(seed)] * (i + 7) % len(_WORDS)]
        pieces.append(word.capitalize() if i == 0 else " " + word)
    pieces.append(".")
    if max_tokens is not None and max_tokens < len(pieces):
        return pieces[:max_tokens], "length"
    return pieces, "stop"


def embed(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text`` (not money: floats are fine here)."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        block = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((b - 127.5) / 127.5 for b in block)
        counter += 1
    values = values[:dimensions]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in values]


def embedding_base64(vector: list[float]) -> str:
    """OpenAI's ``encoding_format="base64"``: little-endian float32, base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
