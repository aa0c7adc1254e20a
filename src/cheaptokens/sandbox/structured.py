"""JSON that matches a JSON Schema, drawn deterministically from a seed.

The sandbox's fake model answers ``response_format`` ``json_schema`` requests and writes
tool-call ``arguments`` with it (docs/sandbox.md "Structured output" and "Tools"): the
same schema and seed always give the same value, and the value validates against the
schema for the keywords below.

Understood: ``type`` (a name or a list: the first non-``null`` one is used), ``const``,
``enum``, ``$ref`` (local JSON pointers such as ``#/$defs/Name``, ``#/definitions/Name``
and ``#``, with sibling keywords merged in), ``allOf`` (merged), ``anyOf``/``oneOf``
(the first branch that is not ``null``), objects (every listed property, and the
``required`` ones; ``minProperties``), arrays (``items``, ``prefixItems``,
``minItems``/``maxItems``, ``uniqueItems``), strings (``minLength``/``maxLength`` and
the formats ``date-time``, ``date``, ``time``, ``email``, ``uri``/``url``, ``uuid``,
``hostname``, ``ipv4``), numbers and integers (``minimum``/``maximum``, both
``exclusive*`` forms, ``multipleOf``), booleans and ``null``. Not understood:
``pattern``, ``not``, ``if``/``then``/``else``, ``dependentRequired`` and
``patternProperties``; a schema built on them may get a value it rejects.

Recursive schemas stop growing below :data:`MAX_DEPTH` levels: past it objects carry only
their required properties and arrays only ``minItems`` items.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from decimal import Decimal
from typing import Any

#: Nesting depth below which optional properties and extra array items are left out.
MAX_DEPTH = 4
#: Depth at which a schema that can only recurse gives up (with ``null``).
HARD_DEPTH = 40

_WORDS = (
    "venice",
    "sandbox",
    "amber",
    "harbor",
    "lantern",
    "meadow",
    "copper",
    "orbit",
    "willow",
    "falcon",
    "prism",
    "cobalt",
)


def synthesise(schema: Any, seed: bytes) -> Any:
    """A value that matches ``schema``, the same for the same schema and seed."""
    plain = _plain(schema)
    return _Synth(plain, seed).value(plain, 0)


def _plain(node: Any) -> Any:
    """Request bodies are parsed with ``Decimal`` floats; schemas are read as floats."""
    if isinstance(node, Decimal):
        return int(node) if node == node.to_integral_value() else float(node)
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def json_text(value: Any) -> str:
    """How the fake model writes JSON (``json.dumps``' default separators)."""
    return json.dumps(_plain(value), ensure_ascii=False)


class _Synth:
    def __init__(self, root: Any, seed: bytes) -> None:
        self.root = root
        self.rng = random.Random(int.from_bytes(seed, "big"))

    # -- schema plumbing ---------------------------------------------------------------
    def deref(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return {}
        node: Any = self.root
        for part in ref[1:].lstrip("/").split("/") if ref not in ("#", "#/") else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return {}
        return node

    def flatten(self, schema: Any, depth: int) -> Any:
        """``$ref`` and ``allOf`` resolved into one schema (sibling keywords kept)."""
        seen = 0
        while isinstance(schema, dict) and ("$ref" in schema or "allOf" in schema):
            seen += 1
            if seen > HARD_DEPTH:
                return {}
            if "$ref" in schema:
                target = self.deref(str(schema["$ref"]))
                rest = {k: v for k, v in schema.items() if k != "$ref"}
                schema = _merge(target, rest) if isinstance(target, dict) else rest
                continue
            parts = [self.flatten(p, depth) for p in schema["allOf"] or []]
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in parts:
                if isinstance(part, dict):
                    merged = _merge(merged, part)
            schema = merged
        return schema

    # -- values --------------------------------------------------------------------------
    def value(self, schema: Any, depth: int) -> Any:
        if depth > HARD_DEPTH:
            return None
        schema = self.flatten(schema, depth)
        if not isinstance(schema, dict):  # ``true`` or a stray value: anything goes
            return self.string({})
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return self.rng.choice(enum)
        for union in ("anyOf", "oneOf"):
            options = schema.get(union)
            if isinstance(options, list) and options:
                rest = {k: v for k, v in schema.items() if k != union}
                branches = [_merge(rest, self.flatten(o, depth)) for o in options]
                chosen = next((b for b in branches if not _is_null(b)), branches[0])
                return self.value(chosen, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            if "properties" in schema or "required" in schema:
                kind = "object"
            elif "items" in schema or "prefixItems" in schema:
                kind = "array"
            else:
                kind = "string"
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, depth)
        if kind == "integer":
            return self.integer(schema)
        if kind == "number":
            return self.number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self.string(schema)

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        names = list(props) if depth < MAX_DEPTH else [n for n in props if n in required]
        out: dict[str, Any] = {name: self.value(props[name], depth + 1) for name in names}
        for name in required:
            if name not in out:
                out[name] = self.string({})
        extra = schema.get("additionalProperties", True)
        wanted = schema.get("minProperties")
        if isinstance(wanted, int) and extra is not False:
            index = 0
            while len(out) < wanted:
                index += 1
                name = f"{_WORDS[index % len(_WORDS)]}_{index}"
                out.setdefault(name, self.value(extra if extra is not True else {}, depth + 1))
        return out

    def array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        min_items, max_items = schema.get("minItems"), schema.get("maxItems")
        low: int = min_items if isinstance(min_items, int) else 0
        high: int | None = max_items if isinstance(max_items, int) else None
        count = low if depth >= MAX_DEPTH else max(low, self.rng.randint(1, 2))
        if high is not None:
            count = min(count, high)
        prefix = schema.get("prefixItems")
        items = schema.get("items", {})
        out: list[Any] = []
        if isinstance(prefix, list):
            out = [
                self.value(p, depth + 1) for p in prefix[: len(prefix) if high is None else high]
            ]
            if items is False or len(out) >= count:
                return out
        if isinstance(items, list):  # draft-04 tuple form
            return [self.value(p, depth + 1) for p in items]
        unique = schema.get("uniqueItems") is True
        attempts = 0
        while len(out) < count and attempts < count * 8 + 8:
            attempts += 1
            item = self.value(items, depth + 1)
            if unique and any(_same(item, seen) for seen in out):
                continue
            out.append(item)
        return out

    def string(self, schema: dict[str, Any]) -> str:
        fmt = schema.get("format")
        word = self.rng.choice(_WORDS)
        formatted = {
            "date-time": "2026-03-10T12:00:00Z",
            "date": "2026-03-10",
            "time": "12:00:00",
            "email": f"{word}@example.com",
            "uri": f"https://example.com/{word}",
            "url": f"https://example.com/{word}",
            "hostname": f"{word}.example.com",
            "ipv4": "192.0.2.1",
        }
        if fmt == "uuid":
            return str(uuid.UUID(bytes=self.rng.randbytes(16), version=4))
        if isinstance(fmt, str) and fmt in formatted:
            return formatted[fmt]
        text = " ".join(self.rng.choice(_WORDS) for _ in range(self.rng.randint(1, 3)))
        low = schema.get("minLength")
        high = schema.get("maxLength")
        if isinstance(low, int):
            while len(text) < low:
                text += " " + self.rng.choice(_WORDS)
        if isinstance(high, int) and len(text) > high:
            text = text[:high].rstrip() if len(text[:high].rstrip()) >= (low or 0) else text[:high]
        return text

    def integer(self, schema: dict[str, Any]) -> int:
        low, low_open, high, high_open = _bounds(schema)
        lo = None if low is None else (math.floor(low) + 1 if low_open else math.ceil(low))
        hi = None if high is None else (math.ceil(high) - 1 if high_open else math.floor(high))
        lo, hi = _range(lo, hi)
        step = _number(schema.get("multipleOf"))
        if step is not None and step > 0 and float(step).is_integer():
            whole = int(step)
            first = math.ceil(lo / whole) * whole
            if first > hi:
                return first
            return first + whole * self.rng.randint(0, (hi - first) // whole)
        return self.rng.randint(lo, hi)

    def number(self, schema: dict[str, Any]) -> int | float:
        low, low_open, high, high_open = _bounds(schema)
        step = _number(schema.get("multipleOf"))
        if step is not None and step > 0:
            k_low = 0 if low is None else math.ceil(low / step)
            k_high = k_low + 100 if high is None else math.floor(high / step)
            multiple = step * self.rng.randint(k_low, max(k_low, k_high))
            return int(multiple) if float(multiple).is_integer() else multiple
        lo = low if low is not None else (high - 100 if high is not None and high < 0 else 0)
        hi = high if high is not None else lo + 100
        value: float = round(lo + (hi - lo) * self.rng.random(), 2)
        if value < lo or value > hi or (low_open and value <= lo) or (high_open and value >= hi):
            value = (lo + hi) / 2
        return int(value) if value.is_integer() else value


def _bounds(schema: dict[str, Any]) -> tuple[float | None, bool, float | None, bool]:
    """Lower and upper bound (each with "exclusive?"), from draft-04 or later keywords."""
    low, high = _number(schema.get("minimum")), _number(schema.get("maximum"))
    low_open = high_open = False
    ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if ex_low is True:  # draft-04: a flag on ``minimum``
        low_open = low is not None
    else:
        bound = _number(ex_low)
        if bound is not None and (low is None or bound >= low):
            low, low_open = bound, True
    if ex_high is True:
        high_open = high is not None
    else:
        bound = _number(ex_high)
        if bound is not None and (high is None or bound <= high):
            high, high_open = bound, True
    return low, low_open, high, high_open


def _merge(base: Any, extra: Any) -> Any:
    """``extra``'s keywords over ``base``'s; properties and required lists combined."""
    if not isinstance(base, dict) or not isinstance(extra, dict):
        return extra if isinstance(extra, dict) else base
    out = {**base, **extra}
    if isinstance(base.get("properties"), dict) and isinstance(extra.get("properties"), dict):
        out["properties"] = {**base["properties"], **extra["properties"]}
    if isinstance(base.get("required"), list) and isinstance(extra.get("required"), list):
        out["required"] = list(dict.fromkeys([*base["required"], *extra["required"]]))
    return out


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and (
        schema.get("type") == "null" or ("const" in schema and schema["const"] is None)
    )


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _range(lo: int | None, hi: int | None) -> tuple[int, int]:
    if lo is None and hi is None:
        return 0, 100
    if lo is None:
        assert hi is not None
        return min(0, hi - 100) if hi < 0 else 0, hi
    if hi is None:
        return lo, lo + 100
    return lo, max(lo, hi)
