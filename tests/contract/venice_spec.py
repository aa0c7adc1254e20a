"""Venice's OpenAPI file (``venice-openapi.yaml``) loaded for response validation.

Loaded with YAML 1.2 core-schema scalars: PyYAML's default YAML 1.1 resolver would turn
the file's bare ``on``/``off`` enum values into booleans and its dates into ``datetime``
objects. ``$ref``s are inlined; responses are checked with the OpenAPI 3.0 validator
(which understands ``nullable``). Statuses an operation does not declare are checked
against the spec's shared error schemas (see :func:`schema_for`).
"""

from __future__ import annotations

import pathlib
import re
from functools import cache
from typing import Any

import yaml
from openapi_schema_validator import OAS30Validator

SPEC_PATH = pathlib.Path(__file__).with_name("venice-openapi.yaml")


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema implicit types only."""


Yaml12Loader.yaml_implicit_resolvers = {}
for tag, pattern, first in [
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("int", r"^[-+]?[0-9]+$", "-+0123456789"),
    ("float", r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$", "-+0123456789."),
]:
    Yaml12Loader.add_implicit_resolver(f"tag:yaml.org,2002:{tag}", re.compile(pattern), list(first))


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(SPEC_PATH.read_text(encoding="utf-8"), Loader=Yaml12Loader)  # noqa: S506 (a SafeLoader)
    return loaded


def resolve(node: Any, seen: tuple[str, ...] = ()) -> Any:
    """Inline local ``$ref``s (a ref already being expanded is left as ``{}``).

    A ``nullable: true`` enum without ``null`` among its values gets ``None`` added: the
    SPEC marks such fields nullable (``BillingBalanceResponse.consumptionCurrency``, which
    docs/venice-facts.md §2.1 gives as ``…|null``), but OpenAPI 3.0.3 validators read the enum
    as excluding null. This is the one reading of the SPEC the test makes.
    """
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in seen:
                return {}
            target: Any = spec()
            for part in ref.removeprefix("#/").split("/"):
                target = target[part]
            return resolve(target, (*seen, ref))
        out = {k: resolve(v, seen) for k, v in node.items()}
        enum = out.get("enum")
        if out.get("nullable") is True and isinstance(enum, list) and None not in enum:
            out["enum"] = [*enum, None]
        return out
    if isinstance(node, list):
        return [resolve(v, seen) for v in node]
    return node


def schema_for(path: str, method: str, status: int) -> dict[str, Any]:
    responses = spec()["paths"][path][method]["responses"]
    entry = responses.get(str(status))
    if entry is not None:
        return resolve(entry["content"]["application/json"]["schema"])  # type: ignore[no-any-return]
    schemas = spec()["components"]["schemas"]
    if status == 402:
        return resolve(
            {"anyOf": [schemas["StandardError"], schemas["X402InferencePaymentRequired"]]}
        )  # type: ignore[no-any-return]
    return resolve(schemas["StandardError"])  # type: ignore[no-any-return]


def schema_errors(path: str, method: str, status: int, body: Any) -> list[str]:
    """Why ``body`` does not match the spec's schema for that response (empty: it does)."""
    validator = OAS30Validator(schema_for(path, method, status))
    return [e.message for e in validator.iter_errors(body)]


def request_errors(schema_name: str, body: Any) -> list[str]:
    """Why a request body does not match ``components/schemas/<schema_name>``."""
    validator = OAS30Validator(resolve(spec()["components"]["schemas"][schema_name]))
    return [e.message for e in validator.iter_errors(body)]
