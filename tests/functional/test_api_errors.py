"""Errors of the JSON API say what is wrong in terms a client can act on."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from support.shopkit import make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"credit_cents": 500,}',
        b'{\n  "credit_cents":\n}',
        b'{"quote_id": "q_1"',
        b"{not json",
    ],
)
def test_broken_json_says_where_it_broke(tmp_path: Any, body: bytes) -> None:
    try:
        json.loads(body)
    except json.JSONDecodeError as exc:
        expected = f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
    with make_kit(tmp_path, now=NOON) as kit:
        for path in ("/api/quotes", "/api/orders"):
            r = kit.web.post(path, content=body, headers=JSON)
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            assert error["code"] == "invalid_input"
            assert error["field"] == "body", error
            assert error["message"] == f"the body is not valid JSON: {expected}", error


def test_schema_errors_still_name_the_field(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        r = kit.web.post("/api/quotes", json={"credit_cents": "5"})
        assert r.status_code == 422
        assert r.json()["error"]["field"] == "credit_cents"
