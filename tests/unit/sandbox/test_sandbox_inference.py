"""Models, chat and embeddings: deterministic output, real token counts, strict bodies."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests.unit.sandbox.sandbox_helpers import MODEL, bearer, chat

from cheaptokens.sandbox.catalogue import count_tokens

KeyMaker = Callable[..., dict[str, Any]]


def test_models_list_adds_wrapper_fields(client: TestClient) -> None:
    body = client.get("/api/v1/models").json()
    assert (body["object"], body["type"]) == ("list", "text")
    assert body["data"] and all(m["type"] == "text" for m in body["data"])
    entry = next(m for m in body["data"] if m["id"] == MODEL)
    assert (entry["object"], entry["owned_by"]) == ("model", "venice.ai")
    assert entry["context_length"] == entry["model_spec"]["availableContextTokens"]
    embeddings = client.get("/api/v1/models?type=embedding").json()
    assert {m["type"] for m in embeddings["data"]} == {"embedding"}
    assert client.get("/api/v1/models?type=nonsense").status_code == 400


def test_chat_is_deterministic_and_counts_tokens(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    one, two = chat(client, secret).json(), chat(client, secret).json()
    text = one["choices"][0]["message"]["content"]
    assert text == two["choices"][0]["message"]["content"]
    assert one["usage"]["completion_tokens"] == count_tokens(text)
    # "user" + "hello there" + 3 framing tokens
    assert one["usage"]["prompt_tokens"] == 1 + 2 + 3
    assert (
        one["usage"]["total_tokens"]
        == one["usage"]["prompt_tokens"] + one["usage"]["completion_tokens"]
    )
    assert one["choices"][0]["finish_reason"] == "stop"
    other = chat(client, secret, content="something else entirely").json()
    assert other["choices"][0]["message"]["content"] != text


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_cuts_with_length(client: TestClient, make_key: KeyMaker, field: str) -> None:
    body = chat(client, make_key()["apiKey"], **{field: 2}).json()
    assert body["usage"]["completion_tokens"] == 2
    assert body["choices"][0]["finish_reason"] == "length"


def test_stream_ends_with_usage_chunk_and_done(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    response = chat(client, secret, stream=True)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    import json

    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    final = chunks[-1]
    assert final["choices"] == [] and final["cost"]["diem"] > 0
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert final["usage"]["completion_tokens"] == count_tokens(text)
    assert text == chat(client, secret).json()["choices"][0]["message"]["content"]


def test_chat_errors(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    unknown = client.post(
        "/api/v1/chat/completions",
        headers=bearer(secret),
        json={"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]},
    )
    assert unknown.status_code == 404 and "error" in unknown.json()
    strict = chat(client, secret, frobnicate=True)
    assert strict.status_code == 400 and strict.json()["issues"][0]["keys"] == ["frobnicate"]
    missing = client.post("/api/v1/chat/completions", headers=bearer(secret), json={"model": MODEL})
    assert missing.status_code == 400 and "messages" in missing.json()["details"]
    no_auth = client.post("/api/v1/chat/completions", json={"model": MODEL, "messages": []})
    assert no_auth.status_code == 402


def test_embeddings(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    body = {"model": "text-embedding-bge-m3", "input": ["hello world", "bye"], "dimensions": 8}
    data = client.post("/api/v1/embeddings", headers=bearer(secret), json=body).json()
    assert [d["index"] for d in data["data"]] == [0, 1]
    assert len(data["data"][0]["embedding"]) == 8
    assert data["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    again = client.post("/api/v1/embeddings", headers=bearer(secret), json=body).json()
    assert again["data"] == data["data"]
    packed = client.post(
        "/api/v1/embeddings", headers=bearer(secret), json={**body, "encoding_format": "base64"}
    ).json()
    assert len(base64.b64decode(packed["data"][0]["embedding"])) == 8 * 4
    tokens = client.post(
        "/api/v1/embeddings",
        headers=bearer(secret),
        json={"model": "text-embedding-bge-m3", "input": [[1, 2, 3]]},
    )
    assert tokens.status_code == 400
    wrong = client.post(
        "/api/v1/embeddings", headers=bearer(secret), json={"model": MODEL, "input": "x"}
    )
    assert wrong.status_code == 400
