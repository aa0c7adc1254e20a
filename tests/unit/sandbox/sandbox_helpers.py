"""Constants and helpers shared by the sandbox unit tests (a uniquely named module,
so it never clashes with other directories' ``conftest``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.testclient import TestClient

ADMIN_KEY = "VENICE_ADMIN_KEY_sandbox_0000"
START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
MODEL = "zai-org-glm-5-1"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


ADMIN = bearer(ADMIN_KEY)


def chat(client: TestClient, secret: str, content: str = "hello there", **extra: Any) -> Any:
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}
    return client.post("/api/v1/chat/completions", json=body, headers=bearer(secret))


def prompt_of(tokens: int) -> list[dict[str, str]]:
    """Messages whose prompt counts exactly ``tokens`` sandbox tokens (at least 5):
    the role (1), ``tokens - 4`` one-word tokens and the 3 framing tokens."""
    assert tokens >= 5
    return [{"role": "user", "content": "x " * (tokens - 4)}]
