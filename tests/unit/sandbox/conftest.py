"""Fixtures for the sandbox unit tests: a sandbox on a frozen clock and a client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests.unit.sandbox.sandbox_helpers import ADMIN, ADMIN_KEY, START

from cheaptokens.sandbox import AccountSpec, Sandbox


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(
        accounts=[AccountSpec(admin_key=ADMIN_KEY, diem=Decimal("100"), usd=Decimal("0"))],
        now=START,
    )


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[TestClient]:
    with TestClient(sandbox.app) as c:
        yield c


@pytest.fixture
def make_key(client: TestClient) -> Callable[..., dict[str, Any]]:
    """Create a key through the API; returns the create response's ``data``."""

    def make(**fields: Any) -> dict[str, Any]:
        body = {"apiKeyType": "INFERENCE", "description": "test key", **fields}
        response = client.post("/api/v1/api_keys", json=body, headers=ADMIN)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    return make
