"""The chat-request fields beyond model and messages: validated, capability-gated.

- ``model``: a model id, trait or compatibility mapping, with an optional feature suffix
  ``model:key=value&key=value`` (docs/venice-facts.md §3.1; SK-CHAT "Model feature
  suffixes": values URL-decoded, booleans ``true``/``false``, suffixes override the same
  keys in ``venice_parameters``, unknown keys ignored, ``enable_e2ee`` and
  ``enable_x_search`` are no suffix keys);
- ``venice_parameters``: every documented field type-checked as the SPEC declares it
  (unknown keys dropped, §3.1);
- ``n``, ``stop``, ``response_format``, ``tools``, ``tool_choice``,
  ``parallel_tool_calls``: shapes as the SPEC's ``ChatCompletionRequest``; the capability
  gates of SK-CHAT (``response_format`` other than ``text`` needs
  ``supportsResponseSchema``; ``tools``, ``tool_choice`` and ``parallel_tool_calls: true``
  need ``supportsFunctionCalling``).

Every shape problem is a 400 ``DetailedError`` listing all issues; a gate is a 400 marked
as an unsupported-feature request (:func:`.errors.unsupported_feature`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from . import errors
from .catalogue import Model
from .errors import issue

WEB_SEARCH = ("auto", "off", "on")
#: Echoed in every response with these defaults (SPEC response ``venice_parameters``).
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
BOOLEAN_PARAMETERS = (
    "enable_e2ee",
    "enable_web_citations",
    "enable_web_scraping",
    "include_venice_system_prompt",
    "include_search_results_in_stream",
    "return_search_results_as_documents",
    "strip_thinking_response",
    "disable_thinking",
    "enable_x_search",
)
#: Echoed only when the request set them (the SPEC's response lists neither as required).
OPTIONAL_ECHOED = ("character_slug", "enable_x_search")
SUFFIX_KEYS = (
    "enable_web_search",
    "enable_web_citations",
    "enable_web_scraping",
    "include_venice_system_prompt",
    "include_search_results_in_stream",
    "return_search_results_as_documents",
    "character_slug",
    "strip_thinking_response",
    "disable_thinking",
)
TOOL_CHOICES = ("auto", "none", "required")
#: Sandbox bound on ``n`` (OpenAI's; the SPEC gives none).
MAX_N = 128
MAX_STOP = 4


def split_model(value: Any) -> tuple[str, str]:
    """``(name, suffix)`` of a request's ``model``; 400 if it is not a non-empty string."""
    if not isinstance(value, str) or not value:
        raise errors.detailed([issue(["model"], "Expected string", "invalid_type")])
    name, _, suffix = value.partition(":")
    return name, suffix


def _expected(options: tuple[str, ...]) -> str:
    return " | ".join(f"'{o}'" for o in options)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "number"


def _check_parameter(name: str, value: Any, path: list[str | int]) -> dict[str, Any] | None:
    """The zod-style issue for one ``venice_parameters`` value, or None if it is valid."""
    if name == "enable_web_search":
        if not isinstance(value, str):  # zod's enum: a non-string is a type error
            got = _type_name(value)
            return issue(
                path,
                f"Expected {_expected(WEB_SEARCH)}, received {got}",
                "invalid_type",
                expected=_expected(WEB_SEARCH),
                received=got,
            )
        if value not in WEB_SEARCH:
            return issue(
                path,
                f"Invalid enum value. Expected {_expected(WEB_SEARCH)}, received '{value}'",
                "invalid_enum_value",
                options=list(WEB_SEARCH),
                received=value,
            )
        return None
    want = "string" if name == "character_slug" else "boolean"
    got = _type_name(value)
    if got != want:
        return issue(
            path,
            f"Expected {want}, received {got}",
            "invalid_type",
            expected=want,
            received=got,
        )
    return None


def _suffix_parameters(suffix: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``venice_parameters`` a feature suffix sets, and the issues with its values."""
    out: dict[str, Any] = {}
    problems: list[dict[str, Any]] = []
    for part in suffix.split("&"):
        key, _, raw = part.partition("=")
        if key not in SUFFIX_KEYS:
            continue  # unknown keys (and empty parts) are ignored (SK-CHAT)
        value: Any = unquote(raw)
        expected: tuple[str, ...]
        if key == "enable_web_search":
            ok, expected = value in WEB_SEARCH, WEB_SEARCH
        elif key == "character_slug":
            ok, expected = bool(value), ()
        else:
            ok, expected = value in ("true", "false"), ("true", "false")
            value = value == "true"
        if not ok:
            wanted = _expected(expected) if expected else "a non-empty string"
            problems.append(
                issue(
                    ["model"],
                    f"Invalid value for model feature suffix '{key}': "
                    f"expected {wanted}, received '{unquote(raw)}'",
                    "invalid_model_suffix",
                )
            )
        else:
            out[key] = value
    return out, problems


def venice_parameters(raw: Any, suffix: str) -> dict[str, Any]:
    """The effective ``venice_parameters``: defaults, then the body's, then the suffix's."""
    problems: list[dict[str, Any]] = []
    given: dict[str, Any] = {}
    if raw is not None and not isinstance(raw, dict):
        problems.append(issue(["venice_parameters"], "Expected object", "invalid_type"))
    elif isinstance(raw, dict):
        known = (*VENICE_PARAMETER_DEFAULTS, *OPTIONAL_ECHOED)
        for name, value in raw.items():
            if name not in known:
                continue  # dropped, not rejected (docs/venice-facts.md §3.1)
            problem = _check_parameter(name, value, ["venice_parameters", name])
            if problem is None:
                given[name] = value
            else:
                problems.append(problem)
    from_suffix, suffix_problems = _suffix_parameters(suffix)
    problems += suffix_problems
    if problems:
        raise errors.detailed(problems)
    return {**VENICE_PARAMETER_DEFAULTS, **given, **from_suffix}


def parse_n(body: dict[str, Any]) -> int:
    """``n`` choices (SPEC: integer, default 1; charged for all of them)."""
    value = body.get("n")
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_N:
        raise errors.detailed(
            [issue(["n"], f"Expected an integer between 1 and {MAX_N}", "invalid_type")]
        )
    return value


def parse_stop(body: dict[str, Any]) -> tuple[str, ...]:
    """``stop``: a string, 1-4 strings, or null (SPEC)."""
    value = body.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if (
        isinstance(value, list)
        and 1 <= len(value) <= MAX_STOP
        and all(isinstance(v, str) for v in value)
    ):
        return tuple(v for v in value if v)
    raise errors.detailed(
        [issue(["stop"], "Expected a string or an array of 1 to 4 strings", "invalid_union")]
    )


def is_openai_reasoning_model(model: Model) -> bool:
    """SK-CHAT's "OpenAI reasoning models (e.g. ``openai-gpt-52``)": in the catalogue, the
    ``openai-gpt-*`` reasoning models other than the open-weights ``openai-gpt-oss-*``
    (sandbox reading of which models those are)."""
    return (
        model.id.startswith("openai-gpt-")
        and not model.id.startswith("openai-gpt-oss")
        and model.capability("supportsReasoning")
    )


def check_sampling_fields(body: dict[str, Any], model: Model) -> None:
    """SK-CHAT: OpenAI reasoning models reject ``seed``, ``stop``, ``n`` other than 1 and
    non-zero ``presence_penalty``/``frequency_penalty`` with a 400 whose issue reads
    "<field> is not supported by this model"."""
    if not is_openai_reasoning_model(model):
        return
    for field, used in (
        ("seed", body.get("seed") is not None),
        ("stop", body.get("stop") not in (None, [], "")),
        ("n", body.get("n") not in (None, 1)),
        ("presence_penalty", body.get("presence_penalty") not in (None, 0)),
        ("frequency_penalty", body.get("frequency_penalty") not in (None, 0)),
    ):
        if used:
            raise errors.unsupported_feature(field)


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """``text`` (the default), ``json_object`` or ``json_schema`` with its schema."""

    type: str = "text"
    schema: Any = None


_SCHEMA_WRAPPER_KEYS = ("name", "description", "strict")


def parse_response_format(body: dict[str, Any], model: Model) -> ResponseFormat:
    raw = body.get("response_format")
    if raw is None:
        return ResponseFormat()
    if not isinstance(raw, dict):
        raise errors.detailed([issue(["response_format"], "Expected object", "invalid_type")])
    kind = raw.get("type")
    kinds = ("json_schema", "json_object", "text")
    if kind not in kinds:
        raise errors.detailed(
            [
                issue(
                    ["response_format", "type"],
                    f"Invalid discriminator value. Expected {_expected(kinds)}",
                    "invalid_union_discriminator",
                    options=list(kinds),
                )
            ]
        )
    allowed = ("type", "json_schema") if kind == "json_schema" else ("type",)
    extra = [k for k in raw if k not in allowed]
    if extra:
        names = ", ".join(f"'{k}'" for k in extra)
        raise errors.detailed(
            [
                issue(
                    ["response_format"],
                    f"Unrecognized key(s) in object: {names}",
                    "unrecognized_keys",
                    keys=extra,
                )
            ]
        )
    schema: Any = None
    if kind == "json_schema":
        wrapper = raw.get("json_schema")
        if not isinstance(wrapper, dict):
            problem = "Required" if "json_schema" not in raw else "Expected object"
            raise errors.detailed([issue(["response_format", "json_schema"], problem)])
        if "schema" in wrapper:
            schema = wrapper["schema"]
            if not isinstance(schema, dict):
                raise errors.detailed(
                    [issue(["response_format", "json_schema", "schema"], "Expected object")]
                )
        else:
            # The SPEC's own example puts the schema straight under ``json_schema``.
            schema = {k: v for k, v in wrapper.items() if k not in _SCHEMA_WRAPPER_KEYS}
    if kind != "text" and not model.capability("supportsResponseSchema"):
        raise errors.unsupported_feature("response_format")
    return ResponseFormat(kind, schema)


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call."""

    name: str
    parameters: Any  # its JSON Schema, or None


@dataclass(frozen=True, slots=True)
class Tools:
    functions: tuple[Tool, ...] = ()
    choice: str = "auto"  # "auto" | "none" | "required" | "function"
    named: str | None = None  # the function a named ``tool_choice`` forces


def _tool(raw: Any, index: int) -> Tool | None:
    """One ``tools`` entry: a function (returned) or a ``web_search``/``x_search`` entry.
    SK-CHAT: the flat (``{type, name, parameters}``) and Anthropic (``{name, input_schema}``)
    shapes are converted to the nested one."""
    path: list[str | int] = ["tools", index]
    if not isinstance(raw, dict):
        raise errors.detailed([issue(path, "Expected object", "invalid_type")])
    function = raw.get("function")
    if function is None:
        if raw.get("type") in ("web_search", "x_search"):
            return None  # accepted; not Venice search (SK-CHAT), and never called
        if "name" not in raw:
            raise errors.detailed([issue([*path, "function"], "Required", "invalid_type")])
        function = {k: raw[k] for k in ("name", "description", "strict") if k in raw}
        for schema_key in ("parameters", "input_schema"):
            if schema_key in raw:
                function["parameters"] = raw[schema_key]
    if not isinstance(function, dict):
        raise errors.detailed([issue([*path, "function"], "Expected object", "invalid_type")])
    problems = []
    name = function.get("name")
    if not isinstance(name, str) or not name:
        problems.append(issue([*path, "function", "name"], "Expected string", "invalid_type"))
    for field, kind in (("parameters", dict), ("description", str), ("strict", bool)):
        if field in function and not isinstance(function[field], kind):
            want = {dict: "object", str: "string", bool: "boolean"}[kind]
            problems.append(issue([*path, "function", field], f"Expected {want}", "invalid_type"))
    if problems:
        raise errors.detailed(problems)
    return Tool(str(name), function.get("parameters"))


def parse_tools(body: dict[str, Any], model: Model) -> Tools:
    raw_tools = body.get("tools")
    if raw_tools is not None and not isinstance(raw_tools, list):
        raise errors.detailed([issue(["tools"], "Expected array", "invalid_type")])
    parsed = [_tool(t, i) for i, t in enumerate(raw_tools or [])]
    functions = tuple(t for t in parsed if t is not None)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise errors.detailed([issue(["parallel_tool_calls"], "Expected boolean", "invalid_type")])
    raw_choice = body.get("tool_choice")
    choice, named = "auto", None
    if isinstance(raw_choice, dict) and raw_choice.get("type") in TOOL_CHOICES:
        raw_choice = raw_choice["type"]  # {"type": "auto"} is the string form (SK-CHAT)
    if isinstance(raw_choice, str):
        if raw_choice not in TOOL_CHOICES:
            raise errors.detailed(
                [
                    issue(
                        ["tool_choice"],
                        f"Invalid enum value. Expected {_expected(TOOL_CHOICES)}, "
                        f"received '{raw_choice}'",
                        "invalid_enum_value",
                        options=list(TOOL_CHOICES),
                    )
                ]
            )
        choice = raw_choice
    elif isinstance(raw_choice, dict):
        function = raw_choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not isinstance(raw_choice.get("type"), str):
            raise errors.detailed([issue(["tool_choice"], "Invalid input", "invalid_union")])
        choice, named = "function", name
    elif raw_choice is not None:
        raise errors.detailed([issue(["tool_choice"], "Invalid input", "invalid_union")])
    if not model.capability("supportsFunctionCalling"):
        for field, used in (
            ("tools", bool(raw_tools)),
            ("tool_choice", raw_choice is not None),
            ("parallel_tool_calls", parallel is True),
        ):
            if used:
                raise errors.unsupported_feature(field)
    if choice in ("required", "function") and not functions:
        # sandbox wording: the SPEC and SK-CHAT give no message for this case
        raise errors.detailed(
            [issue(["tool_choice"], f"tool_choice '{choice}' needs at least one function tool")]
        )
    if named is not None and named not in {f.name for f in functions}:
        raise errors.detailed(
            [issue(["tool_choice"], f"tool_choice names '{named}', which is not among the tools")]
        )
    return Tools(functions, choice, named)
