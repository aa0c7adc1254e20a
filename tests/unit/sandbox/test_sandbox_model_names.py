"""What a chat request's ``model`` may be (an id, a trait, a compatibility mapping, with a
feature suffix), the two routes listing traits and mappings, ``venice_parameters``
validation and the unknown-model 404 (issue #15, items 1, 5, 6 and 8)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests.unit.sandbox.sandbox_helpers import ADMIN, bearer

from cheaptokens.sandbox import catalogue

KeyMaker = Callable[..., dict[str, Any]]
HELLO = [{"role": "user", "content": "hello there"}]


def post(client: TestClient, secret: str, **body: Any) -> Any:
    return client.post(
        "/api/v1/chat/completions",
        json={"messages": HELLO, **body},
        headers=bearer(secret),
    )


def traits_of(model_type: str) -> dict[str, str]:
    """Trait → model id, read straight from the shipped models.json."""
    out: dict[str, str] = {}
    for entry in catalogue._raw_catalogue():
        if entry["type"] == model_type:
            for trait in entry["model_spec"]["traits"]:
                out.setdefault(trait, entry["id"])
    return out


def test_traits_route_serves_the_catalogue_traits(client: TestClient) -> None:
    body = client.get("/api/v1/models/traits").json()
    assert (body["object"], body["type"]) == ("list", "text")
    assert body["data"] == traits_of("text")
    assert {"default", "most_intelligent", "function_calling_default"} <= set(body["data"])
    image = client.get("/api/v1/models/traits?type=image").json()
    assert image["type"] == "image" and image["data"] == traits_of("image")
    assert client.get("/api/v1/models/traits?type=embedding").json()["data"] == {}
    bad = client.get("/api/v1/models/traits?type=all")
    assert bad.status_code == 400 and bad.json()["issues"][0]["path"] == ["type"]


def test_compatibility_mapping_route(client: TestClient, make_key: KeyMaker) -> None:
    body = client.get("/api/v1/models/compatibility_mapping").json()
    assert (body["object"], body["type"]) == ("list", "text")
    assert body["data"]["gpt-4o"] == "zai-org-glm-5-1"  # the SPEC's example
    assert all(target in catalogue.models_by_id() for target in body["data"].values())
    assert client.get("/api/v1/models/compatibility_mapping?type=video").json()["data"] == {}
    # A privacy-restricted key sees only mappings to models it may call (SK-KEYS).
    private = make_key(modelPrivacy="PRIVATE_TEXT")["apiKey"]
    shown = client.get("/api/v1/models/compatibility_mapping", headers=bearer(private)).json()
    assert "gpt-5-4-pro" in body["data"] and "gpt-5-4-pro" not in shown["data"]
    assert shown["data"]["gpt-4o"] == "zai-org-glm-5-1"


@pytest.mark.parametrize("trait", ["default", "most_intelligent", "function_calling_default"])
def test_a_trait_runs_its_model(client: TestClient, make_key: KeyMaker, trait: str) -> None:
    response = post(client, make_key()["apiKey"], model=trait)
    assert response.status_code == 200, response.text
    resolved = traits_of("text")[trait]
    # The SPEC: the response's ``model`` is "the model id used for the request".
    assert response.json()["model"] == resolved
    assert response.headers["x-venice-model-id"] == resolved
    direct = post(client, make_key()["apiKey"], model=resolved).json()
    assert response.json()["choices"] == direct["choices"]  # the same model answers


def test_a_compatibility_mapping_runs_its_model(client: TestClient, make_key: KeyMaker) -> None:
    response = post(client, make_key()["apiKey"], model="gpt-4o", stream=True)
    assert response.status_code == 200
    assert '"model":"zai-org-glm-5-1"' in response.text


def test_lenient_names(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    assert post(client, secret, model="DeepSeek V3.2").json()["model"] == "deepseek-v3.2"
    assert post(client, secret, model="venice-zai-org-glm-5-1").json()["model"] == (
        "zai-org-glm-5-1"
    )


def test_unknown_model_404_names_the_model(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    for sent in ("no-such-model", "no-such-model:enable_web_search=on"):
        response = post(client, secret, model=sent)
        assert response.status_code == 404
        assert response.json() == {"error": "Specified model not found: no-such-model"}
    emb = client.post(
        "/api/v1/embeddings",
        json={"model": "default", "input": "x"},  # no embedding model has that trait
        headers=bearer(secret),
    )
    assert emb.json() == {"error": "Specified model not found: default"}


def test_feature_suffix_sets_venice_parameters(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    body = post(
        client, secret, model="deepseek-v3.2:enable_web_search=on&disable_thinking=true"
    ).json()
    assert body["model"] == "deepseek-v3.2"
    params = body["venice_parameters"]
    assert (params["enable_web_search"], params["disable_thinking"]) == ("on", True)
    # Suffixes override the body; values are URL-decoded; unknown keys and enable_x_search
    # (not a suffix key) are ignored; a suffix also works on a trait.
    body = post(
        client,
        secret,
        model="default:include_venice_system_prompt=false&character_slug=alan%2Dwatts"
        "&frobnicate=1&enable_x_search=true&enable_web_search=auto",
        venice_parameters={"enable_web_search": "off", "include_venice_system_prompt": True},
    ).json()
    params = body["venice_parameters"]
    assert params["include_venice_system_prompt"] is False
    assert params["enable_web_search"] == "auto"
    assert params["character_slug"] == "alan-watts"
    assert "enable_x_search" not in params and "frobnicate" not in params


@pytest.mark.parametrize(
    "suffix",
    [
        "enable_web_search=yes",
        "disable_thinking=yes",
        "strip_thinking_response=TRUE",
        "enable_web_citations=",
    ],
)
def test_bad_suffix_values_are_400(client: TestClient, make_key: KeyMaker, suffix: str) -> None:
    response = post(client, make_key()["apiKey"], model=f"deepseek-v3.2:{suffix}")
    assert response.status_code == 400
    (problem,) = response.json()["issues"]
    assert problem["path"] == ["model"] and suffix.split("=")[0] in problem["message"]


def test_venice_parameters_are_validated(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    response = post(
        client,
        secret,
        venice_parameters={"enable_web_search": "yes", "disable_thinking": "yes"},
        model="zai-org-glm-5-1",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["details"]["venice_parameters"]["enable_web_search"]["_errors"] == [
        "Invalid enum value. Expected 'auto' | 'off' | 'on', received 'yes'"
    ]
    assert body["details"]["venice_parameters"]["disable_thinking"]["_errors"] == [
        "Expected boolean, received string"
    ]
    assert {tuple(i["path"]) for i in body["issues"]} == {
        ("venice_parameters", "enable_web_search"),
        ("venice_parameters", "disable_thinking"),
    }


BOOLEAN_FIELDS = [
    "strip_thinking_response",
    "disable_thinking",
    "enable_e2ee",
    "enable_web_scraping",
    "enable_web_citations",
    "include_search_results_in_stream",
    "return_search_results_as_documents",
    "include_venice_system_prompt",
    "enable_x_search",
]


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        *((f, "yes") for f in BOOLEAN_FIELDS),
        *((f, 1) for f in BOOLEAN_FIELDS[:2]),
        ("enable_web_search", True),
        ("enable_web_search", "ON"),
        ("character_slug", 5),
        ("character_slug", None),
    ],
)
def test_every_documented_field_is_type_checked(
    client: TestClient, make_key: KeyMaker, field: str, bad: Any
) -> None:
    response = post(
        client, make_key()["apiKey"], model="zai-org-glm-5-1", venice_parameters={field: bad}
    )
    assert response.status_code == 400
    assert response.json()["issues"][0]["path"] == ["venice_parameters", field]


@pytest.mark.parametrize(("bad", "got"), [(True, "boolean"), (None, "null"), (1, "number")])
def test_a_non_string_web_search_is_a_type_error(
    client: TestClient, make_key: KeyMaker, bad: Any, got: str
) -> None:
    response = post(
        client,
        make_key()["apiKey"],
        model="zai-org-glm-5-1",
        venice_parameters={"enable_web_search": bad},
    )
    assert response.status_code == 400
    (problem,) = response.json()["issues"]
    assert problem["code"] == "invalid_type"
    assert problem["message"] == f"Expected 'auto' | 'off' | 'on', received {got}"


def test_valid_venice_parameters_are_echoed(client: TestClient, make_key: KeyMaker) -> None:
    sent = {
        "enable_web_search": "auto",
        "enable_web_citations": True,
        "include_venice_system_prompt": False,
        "character_slug": "venice",
        "enable_x_search": True,
        "not_a_field": 1,  # unknown keys are dropped, not rejected
    }
    body = post(client, make_key()["apiKey"], model="grok-4-6", venice_parameters=sent).json()
    params = body["venice_parameters"]
    assert {k: params[k] for k in sent if k != "not_a_field"} == {
        k: v for k, v in sent.items() if k != "not_a_field"
    }
    assert "not_a_field" not in params
    assert params["disable_thinking"] is False and params["web_search_citations"] == []
    plain = post(client, make_key()["apiKey"], model="grok-4-6").json()["venice_parameters"]
    assert "character_slug" not in plain and "enable_x_search" not in plain


def test_admin_only_rate_limit_log(client: TestClient, make_key: KeyMaker) -> None:
    secret = make_key()["apiKey"]
    denied = client.get("/api/v1/api_keys/rate_limits/log", headers=bearer(secret))
    assert (denied.status_code, denied.json()) == (401, {"error": "Admin API key required"})
    empty = client.get("/api/v1/api_keys/rate_limits/log", headers=ADMIN)
    assert empty.json() == {"object": "list", "data": []}
