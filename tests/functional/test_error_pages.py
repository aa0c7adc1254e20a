"""People get HTML error pages that say what to do next; API clients get JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from support.shopkit import make_kit

HTML = {"Accept": "text/html,application/xhtml+xml"}


def test_unknown_page_is_an_html_page_for_browsers_and_json_for_the_api(tmp_path):
    with make_kit(tmp_path, now=datetime(2026, 11, 25, 12, tzinfo=UTC)) as kit:
        page = kit.web.get("/no-such-page", headers=HTML)
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "Page not found" in page.text and 'href="/"' in page.text
        api = kit.web.get("/api/no-such-thing", headers=HTML)
        assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
        plain = kit.web.get("/no-such-page")
        assert plain.json()["error"]["code"] == "not_found"


def test_no_swagger_ui_from_a_cdn(tmp_path):
    with make_kit(tmp_path, now=datetime(2026, 11, 25, 12, tzinfo=UTC)) as kit:
        assert kit.web.get("/api/docs").status_code == 404
        assert kit.web.get("/openapi.json").json()["info"]["title"] == "CheapTokens"
