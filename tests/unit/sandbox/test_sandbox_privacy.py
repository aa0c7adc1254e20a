"""``modelPrivacy`` on keys (docs/venice-facts.md §1.2, §3.4, §3.5, §4.3): validated on create
and PATCH, listed, and enforced at admission on chat, embeddings and the model list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests.unit.sandbox.sandbox_helpers import ADMIN, bearer

from cheaptokens.sandbox.catalogue import find_model

KeyMaker = Callable[..., dict[str, Any]]
ANON_TEXT = "openai-gpt-54-pro"
PRIVATE_TEXT = "zai-org-glm-5-1"
ANON_EMBED = "text-embedding-3-small"
PRIVATE_EMBED = "text-embedding-bge-m3"
HELLO = [{"role": "user", "content": "hello"}]


def chat(client: TestClient, secret: str, model: str) -> Any:
    return client.post(
        "/api/v1/chat/completions",
        headers=bearer(secret),
        json={"model": model, "messages": HELLO},
    )


def embed(client: TestClient, secret: str, model: str) -> Any:
    return client.post(
        "/api/v1/embeddings", headers=bearer(secret), json={"model": model, "input": "hi"}
    )


def diem(client: TestClient) -> Any:
    return client.get("/api/v1/billing/balance", headers=ADMIN).json()["balances"]["diem"]


def test_catalogue_privacy_of_the_models_used_here() -> None:
    for model_id, anonymized in [
        (ANON_TEXT, True),
        (PRIVATE_TEXT, False),
        (ANON_EMBED, True),
        (PRIVATE_EMBED, False),
    ]:
        model = find_model(model_id)
        assert model is not None and model.anonymized is anonymized


@pytest.mark.parametrize("privacy", ["PRIVATE_TEXT", "PRIVATE_ONLY"])
def test_restricted_key_gets_403_on_anonymized_models_and_is_not_billed(
    client: TestClient, make_key: KeyMaker, privacy: str
) -> None:
    secret = make_key(modelPrivacy=privacy)["apiKey"]
    refused = chat(client, secret, ANON_TEXT)
    assert refused.status_code == 403
    assert refused.json() == {
        "error": f"This API key is set to '{privacy}', but {ANON_TEXT} is an Anonymous model. "
        "Use a private model or change the key's model privacy setting."
    }
    refused_embedding = embed(client, secret, ANON_EMBED)
    assert refused_embedding.status_code == 403
    assert refused_embedding.json()["error"].startswith(
        f"This API key is set to '{privacy}', but {ANON_EMBED} is an Anonymous model"
    )
    assert diem(client) == 100  # nothing billed for refused calls
    assert chat(client, secret, PRIVATE_TEXT).status_code == 200
    assert embed(client, secret, PRIVATE_EMBED).status_code == 200


def test_all_key_may_use_anonymized_models(client: TestClient, make_key: KeyMaker) -> None:
    data = make_key()
    assert data["modelPrivacy"] == "ALL"
    assert chat(client, data["apiKey"], ANON_TEXT).status_code == 200
    assert embed(client, data["apiKey"], ANON_EMBED).status_code == 200


def test_patch_changes_what_the_key_may_call(client: TestClient, make_key: KeyMaker) -> None:
    data = make_key()
    assert chat(client, data["apiKey"], ANON_TEXT).status_code == 200
    patched = client.patch(
        "/api/v1/api_keys", headers=ADMIN, json={"id": data["id"], "modelPrivacy": "PRIVATE_TEXT"}
    )
    assert patched.status_code == 200 and patched.json()["data"]["modelPrivacy"] == "PRIVATE_TEXT"
    assert chat(client, data["apiKey"], ANON_TEXT).status_code == 403
    listed = client.get("/api/v1/api_keys", headers=ADMIN).json()["data"]
    assert next(k for k in listed if k["id"] == data["id"])["modelPrivacy"] == "PRIVATE_TEXT"
    got = client.get(f"/api/v1/api_keys/{data['id']}", headers=ADMIN).json()["data"]
    assert got["modelPrivacy"] == "PRIVATE_TEXT"
    client.patch("/api/v1/api_keys", headers=ADMIN, json={"id": data["id"], "modelPrivacy": "ALL"})
    assert chat(client, data["apiKey"], ANON_TEXT).status_code == 200


@pytest.mark.parametrize("value", ["PRIVATE", "all", None, 1])
def test_invalid_model_privacy_is_a_detailed_400(
    client: TestClient, make_key: KeyMaker, value: Any
) -> None:
    created = client.post(
        "/api/v1/api_keys",
        headers=ADMIN,
        json={"apiKeyType": "INFERENCE", "description": "x", "modelPrivacy": value},
    )
    assert created.status_code == 400
    assert created.json()["details"]["modelPrivacy"]["_errors"]
    assert created.json()["issues"][0]["options"] == ["ALL", "PRIVATE_TEXT", "PRIVATE_ONLY"]
    data = make_key()
    patched = client.patch(
        "/api/v1/api_keys", headers=ADMIN, json={"id": data["id"], "modelPrivacy": value}
    )
    assert patched.status_code == 400 and "modelPrivacy" in patched.json()["details"]


def test_model_list_is_filtered_for_restricted_keys(client: TestClient, make_key: KeyMaker) -> None:
    def ids(secret: str | None, kind: str) -> set[str]:
        headers = bearer(secret) if secret else {}
        body = client.get(f"/api/v1/models?type={kind}", headers=headers).json()
        return {m["id"] for m in body["data"]}

    def anonymized(kind: str, secret: str | None) -> set[str]:
        body = client.get(
            f"/api/v1/models?type={kind}", headers=bearer(secret) if secret else {}
        ).json()
        return {m["id"] for m in body["data"] if m["model_spec"]["privacy"] == "anonymized"}

    text_key = make_key(modelPrivacy="PRIVATE_TEXT")["apiKey"]
    only_key = make_key(modelPrivacy="PRIVATE_ONLY")["apiKey"]
    all_key = make_key()["apiKey"]
    assert ANON_TEXT in ids(None, "text") and ANON_TEXT in ids(all_key, "text")
    assert ANON_TEXT not in ids(text_key, "text") and PRIVATE_TEXT in ids(text_key, "text")
    assert ANON_EMBED not in ids(text_key, "embedding")
    assert PRIVATE_EMBED in ids(text_key, "embedding")
    # PRIVATE_TEXT restricts text-like models only; PRIVATE_ONLY restricts every type.
    assert anonymized("image", text_key) == anonymized("image", None) != set()
    assert anonymized("all", only_key) == set()
    assert ids(only_key, "all") < ids(None, "all")
