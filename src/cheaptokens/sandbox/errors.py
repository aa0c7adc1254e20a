"""Venice's error bodies and exact messages, as the sandbox sends them.

Venice sends no ``code`` field in API-key error bodies; clients key on status and
message (docs/venice-facts.md §4.1), so the messages below are copied exactly where the fact
sheet gives them. Where it gives no wording the message is marked *sandbox wording*.
"""

from __future__ import annotations

from typing import Any

AUTH_FAILED = "Authentication failed"  # docs/venice-facts.md §4.3
ADMIN_REQUIRED = "Admin API key required"  # docs/venice-facts.md §1.8
INSUFFICIENT_BALANCE = (  # docs/venice-facts.md §4.2
    "Insufficient USD or Diem balance to complete request. "
    "Visit https://venice.ai/settings/api to add credits."
)
DIEM_LIMIT_EXCEEDED = (  # docs/venice-facts.md §4.2
    "API key DIEM spend limit exceeded. Your account may still have DIEM balance, "
    "but this API key has reached its configured DIEM spending limit."
)
USD_LIMIT_EXCEEDED = (  # docs/venice-facts.md §4.2 ("same wording with USD")
    "API key USD spend limit exceeded. Your account may still have USD balance, "
    "but this API key has reached its configured USD spending limit."
)
RATE_LIMITED = "Rate limit exceeded"  # docs/venice-facts.md §4.2 RATE_LIMIT_EXCEEDED
KEY_NOT_FOUND = "API key not found"  # docs/venice-facts.md §1.1 (GET /api_keys/{id})
KEY_NOT_FOUND_OR_EXPIRED = "API key not found or expired"  # docs/venice-facts.md §1.1 (PATCH)
KEY_NOT_FOUND_DELETE = "API key could not be found"  # docs/venice-facts.md §1.1 (DELETE)
#: sandbox wording: docs/venice-facts.md §1.7 gives the status (400) but not the message.
TOO_MANY_KEYS = "You have reached the maximum number of active API keys (500)."
MODEL_NOT_FOUND = "Specified model not found"  # SK-ERR: "Specified model not found: …" (404)
UNKNOWN_ERROR = "An unknown error occurred"  # SPEC 500 description
#: SPEC: the description of every 400 ``DetailedError`` response; SK-ERR and SK-CHAT give
#: it as the live body's ``error``.
INVALID_PARAMETERS = "Invalid request parameters"


def model_privacy_message(key_privacy: str, model_id: str) -> str:
    """The 403 for a privacy-restricted key on an anonymized model: the opening is
    docs/venice-facts.md §4.3's ("This API key is set to '…', but `<model>` is an
    Anonymous model…"); the rest (after the ellipsis) is sandbox wording."""
    return (
        f"This API key is set to '{key_privacy}', but {model_id} is an Anonymous model. "
        "Use a private model or change the key's model privacy setting."
    )


def context_length_exceeded(context: int, requested: int) -> SandboxError:
    """400 in the OpenAI-style shape docs/venice-facts.md §4.1 gives for a context overflow
    (the message is sandbox wording)."""
    return SandboxError(
        400,
        {
            "error": {
                "message": (
                    f"This model's maximum context length is {context} tokens. "
                    f"However, you requested {requested} tokens. "
                    "Please reduce the length of the messages."
                ),
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        },
    )


def failed_budget_message(threshold: int) -> str:
    """docs/venice-facts.md §4.4, the post-snapshot wording, with the configured threshold."""
    return (
        f"Too many failed attempts (> {threshold}) resulting in a non-success status code. "
        "Please wait 30 seconds and try again. "
        "See https://docs.venice.ai/api-reference/rate-limiting for more information."
    )


class SandboxError(Exception):
    """An HTTP error response Venice would send: status, JSON body, extra headers.

    ``unsupported_feature``: a request asking a model for a capability it lacks; it counts
    against the lenient "unsupported feature" budget instead of the failed-request one
    (docs/venice-facts.md §4.4). ``rate_limit``: for a 429 that breaches a limit, the
    ``(rateLimitType, modelId)`` the rate-limit log records (§1.5)."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        *,
        unsupported_feature: bool = False,
        rate_limit: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status}: {body.get('error')!r}")
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.unsupported_feature = unsupported_feature
        self.rate_limit = rate_limit


def standard(status: int, message: str, headers: dict[str, str] | None = None) -> SandboxError:
    """A ``StandardError`` body: ``{"error": message}``."""
    return SandboxError(status, {"error": message}, headers)


def detailed(issues: list[dict[str, Any]], message: str = INVALID_PARAMETERS) -> SandboxError:
    """A 400 ``DetailedError`` in zod's ``format()`` shape plus the flat ``issues`` list
    live Venice adds (docs/venice-facts.md §4.1), under the SPEC's 400 wording."""
    details: dict[str, Any] = {"_errors": []}
    for issue in issues:
        node = details
        for part in issue.get("path", []):
            node = node.setdefault(str(part), {"_errors": []})
        node["_errors"].append(issue["message"])
    return SandboxError(400, {"error": message, "details": details, "issues": issues})


def model_not_found(name: str) -> SandboxError:
    """404 for a ``model`` that is no id, trait or compatibility mapping: SK-ERR gives
    the message as "Specified model not found: …" with the name."""
    return standard(404, f"{MODEL_NOT_FOUND}: {name}")


def unsupported_feature(field: str) -> SandboxError:
    """400 for a field the model's capabilities rule out (SK-CHAT "Capability gates": the
    ``issues[]`` entry for that field gives the reason; the wording is SK-CHAT's for the
    fields OpenAI reasoning models reject, "<field> is not supported by this model")."""
    exc = detailed([issue([field], f"{field} is not supported by this model")])
    exc.unsupported_feature = True
    return exc


def issue(
    path: list[str | int], message: str, code: str = "custom", **extra: Any
) -> dict[str, Any]:
    """One zod-style issue."""
    return {"code": code, "path": path, "message": message, **extra}
