"""JSON synthesised from a JSON Schema (the fake model's structured output and tool-call
arguments) validates against that schema and is deterministic."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

import jsonschema
import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, Field

from cheaptokens.sandbox.structured import json_text, synthesise


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    postcode: str = Field(min_length=5, max_length=5)


class Node(BaseModel):
    name: str
    children: list[Node] = []


class Person(BaseModel):
    name: str
    age: int = Field(ge=18, le=120)
    score: float = Field(gt=0, lt=1)
    colour: Colour
    kind: Literal["a", "b"]
    address: Address
    nickname: str | None = None
    tags: list[str] = Field(min_length=2, max_length=4)
    tree: Node
    price: float = Field(multiple_of=0.5, ge=1)
    email: str = Field(json_schema_extra={"format": "email"})


SCHEMAS: list[dict[str, Any]] = [
    Person.model_json_schema(),
    to_strict_json_schema(Person),  # what the openai SDK sends for .parse()
    {
        "type": "object",
        "properties": {
            "a": {"type": ["string", "null"]},
            "b": {"anyOf": [{"type": "null"}, {"type": "integer", "exclusiveMinimum": 5}]},
            "c": {"oneOf": [{"const": 7}, {"type": "string"}]},
        },
        "required": ["a", "b", "c"],
        "additionalProperties": False,
    },
    {"type": "array", "items": {"enum": [1, 2, 3]}, "uniqueItems": True, "minItems": 3},
    {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 2},
    {"type": "number", "minimum": -5, "maximum": -4.5},
    {"type": "integer", "minimum": 10, "maximum": 30, "multipleOf": 7},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}], "items": False},
    {
        "$defs": {"Leaf": {"type": "object", "properties": {"v": {"type": "number"}}}},
        "allOf": [{"$ref": "#/$defs/Leaf"}, {"required": ["v"]}],
    },
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "uuid"},
    {"type": "string", "minLength": 40, "maxLength": 45},
]


@pytest.mark.parametrize("index", range(len(SCHEMAS)))
def test_synthesised_values_validate_against_their_schema(index: int) -> None:
    schema = SCHEMAS[index]
    for n in range(25):
        seed = hashlib.sha256(f"{index}:{n}".encode()).digest()
        value = synthesise(schema, seed)
        jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())


def test_pydantic_models_load_what_is_synthesised() -> None:
    for n in range(10):
        value = synthesise(to_strict_json_schema(Person), bytes([n]) * 32)
        person = Person.model_validate_json(json_text(value))
        assert 18 <= person.age <= 120 and len(person.tags) >= 2


def test_same_schema_and_seed_give_the_same_value() -> None:
    schema = Person.model_json_schema()
    assert synthesise(schema, b"a" * 32) == synthesise(schema, b"a" * 32)
    assert synthesise(schema, b"a" * 32) != synthesise(schema, b"b" * 32)


def test_recursive_schema_stays_small() -> None:
    value = synthesise(Node.model_json_schema(), b"x" * 32)
    assert len(json.dumps(value)) < 2000


def test_decimal_numbers_from_the_request_body_are_read() -> None:
    # Request bodies are parsed with parse_float=Decimal.
    schema = {"type": "number", "minimum": Decimal("0.25"), "maximum": Decimal("0.75")}
    value = synthesise(schema, b"d" * 32)
    assert 0.25 <= value <= 0.75
    assert json_text({"x": Decimal("1.5")}) == '{"x": 1.5}'


def test_a_dangling_ref_still_gives_json() -> None:
    value = synthesise({"$ref": "#/$defs/Missing"}, b"r" * 32)
    json.dumps(value)
