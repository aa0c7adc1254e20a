"""CHEAPTOKENS_OPERATOR_CONTACT: how buyers reach the operator, on every page that tells them
to (footer, FAQ, order page, error pages) and in the API's 500 message."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from cheaptokens.config import Settings
from cheaptokens.orders import flows
from support.shopkit import make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HTML = {"Accept": "text/html"}
PAGES = ("/", "/docs/faq", "/orders/ord_unknown", "/no-such-page")


def mentions(html: str) -> list[str]:
    """Each "contact the operator of this shop …" on a page, with what follows it."""
    text = re.sub(r"\s+", " ", html)
    return re.findall(r"[Cc]ontact the operator of this shop( \(<a [^>]*>[^<]*</a>\))?", text)


@pytest.mark.parametrize(
    ("contact", "link"),
    [
        ("", None),
        ("help@shop.example", ("mailto:help@shop.example", "help@shop.example")),
        ("mailto:help@shop.example", ("mailto:help@shop.example", "help@shop.example")),
        ("https://shop.example/contact", ("https://shop.example/contact",) * 2),
    ],
)
def test_pages_say_how_to_reach_the_operator(
    tmp_path: Any, contact: str, link: tuple[str, str] | None
) -> None:
    with make_kit(tmp_path, now=NOON, operator_contact=contact) as kit:
        for path in PAGES:
            page = kit.web.get(path, headers=HTML)
            found = mentions(page.text)
            assert found, path
            expected = (
                f' (<a class="operator-contact" href="{link[0]}">{link[1]}</a>)' if link else ""
            )
            assert set(found) == {expected}, (path, found)
        assert len(mentions(kit.web.get("/docs/faq").text)) == 3  # footer, lost key, reach
        assert 'id="operator"' in kit.web.get("/").text  # the footer


def test_the_500_answer_names_the_contact(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("boom")

    with make_kit(tmp_path, now=NOON, operator_contact="help@shop.example") as kit:
        monkeypatch.setattr(flows, "pricing_now", boom)
        with TestClient(kit.web.app, raise_server_exceptions=False) as client:
            api = client.get("/api/pricing")
            assert api.status_code == 500
            assert "contact the operator (help@shop.example)" in api.json()["error"]["message"]
            page = client.get("/", headers=HTML)
            assert page.status_code == 500 and 'href="mailto:help@shop.example"' in page.text


@pytest.mark.parametrize(
    "bad",
    [
        "the operator",
        "http://shop.example/contact",  # not https
        "javascript:alert(1)",
        'https://shop.example/"><script>',
        "help@localhost",
        "mailto:help@shop.example?subject=hi",
    ],
)
def test_a_contact_that_is_no_address_or_https_url_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="CHEAPTOKENS_OPERATOR_CONTACT"):
        Settings(operator_contact=bad)


def test_read_from_the_environment_and_empty_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHEAPTOKENS_OPERATOR_CONTACT", raising=False)
    assert Settings().operator_contact == "" and Settings().operator is None
    monkeypatch.setenv("CHEAPTOKENS_OPERATOR_CONTACT", " help@shop.example ")
    settings = Settings()
    assert settings.operator_contact == "help@shop.example"
    assert settings.operator is not None and settings.operator.href == "mailto:help@shop.example"
