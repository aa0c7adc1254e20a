"""Unit tests of the Venice exception tree: mapping, text, redaction."""

from __future__ import annotations

import pytest

from cheaptokens.venice import errors


def test_redact_scrubs_venice_keys_and_given_secrets() -> None:
    text = "keys VENICE_ADMIN_KEY_abc_123 and VENICE_INFERENCE_KEY_x-y and s3cr3t-token"
    out = errors.redact(text, ["s3cr3t-token", ""])
    assert out == "keys [redacted] and [redacted] and [redacted]"


def test_error_text_names_method_path_status_and_message() -> None:
    exc = errors.NotFound("API key not found", status=400, method="GET", path="/api_keys/k1")
    assert str(exc) == "GET /api_keys/k1: 400 API key not found"
    assert repr(exc) == (
        "NotFound(status=400, message='API key not found', method='GET', path='/api_keys/k1')"
    )
    assert str(errors.Unavailable("no answer")) == "no answer"


def test_messages_are_scrubbed_and_bounded() -> None:
    exc = errors.VeniceError("VENICE_INFERENCE_KEY_leak " + "x" * 1000, status=500)
    assert "VENICE_INFERENCE_KEY_leak" not in str(exc)
    assert len(exc.message) <= 300


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (401, "Authentication failed", errors.AuthenticationFailed),
        (401, "ADMIN API KEY REQUIRED", errors.PermissionDenied),
        (403, "", errors.PermissionDenied),
        (402, "API key USD spend limit exceeded.", errors.SpendLimitExceeded),
        (402, "Insufficient USD or Diem balance", errors.InsufficientBalance),
        (404, "", errors.NotFound),
        (400, "API key not found or expired", errors.NotFound),
        (400, "Invalid request", errors.InvalidRequest),
        (429, "Rate limit exceeded", errors.RateLimited),
        (500, "An unknown error occurred", errors.Unavailable),
        (503, "", errors.Unavailable),
        (302, "moved", errors.VeniceError),
    ],
)
def test_error_for_status(status: int, message: str, expected: type[errors.VeniceError]) -> None:
    exc = errors.error_for_status(status, message, method="GET", path="/p")
    assert type(exc) is expected
    assert (exc.status, exc.method, exc.path) == (status, "GET", "/p")


def test_rate_limited_carries_the_hint_and_invalid_request_the_fields() -> None:
    limited = errors.error_for_status(429, "slow down", method="POST", path="/p", retry_after=2.5)
    assert isinstance(limited, errors.RateLimited) and limited.retry_after == 2.5
    invalid = errors.error_for_status(400, "bad", method="POST", path="/p", fields=("a", "b"))
    assert isinstance(invalid, errors.InvalidRequest) and invalid.fields == ("a", "b")


def test_outcome_unknown_is_an_unavailable() -> None:
    assert issubclass(errors.OutcomeUnknown, errors.Unavailable)
    assert errors.VeniceUnavailable is errors.Unavailable
