"""What a newcomer trips on, in Debian's Chromium: the buy page's amounts and supply, the
chart and the dashboard on a 375-px phone, the declined checkout and the sandbox checkout.

Each test gets its own shop (so selling out one does not starve the others).
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from support.live import Live, live_shop

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = pathlib.Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PHONE = {"width": 375, "height": 740}


@pytest.fixture
def live(tmp_path: pathlib.Path) -> Iterator[Live]:
    with live_shop(tmp_path, now=NOON) as shop:
        yield shop


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed (make browser)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=PHONE)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, errors


def get_price(page: Any, dollars: str) -> None:
    page.get_by_label("Other", exact=True).check()
    page.get_by_label("Other amount in dollars").fill(dollars)
    page.get_by_role("button", name="Get my price").click()


def test_range_errors_on_the_page_match_its_label(page: Any, live: Live) -> None:
    page.goto(live.url + "/")
    legend = page.locator("#buy-form legend").inner_text()
    assert legend == "How much credit? ($1.00 to $89.00)", legend
    get_price(page, "400")
    error = page.locator("#buy-error")
    playwright_api.expect(error).to_have_text("Enter an amount from $1.00 to $89.00.")
    get_price(page, "0.5")
    playwright_api.expect(error).to_have_text("Enter an amount from $1.00 to $89.00.")


def cents_of(page: Any, selector: str) -> int:
    text = page.locator(selector).inner_text().replace("$", "").replace(",", "")
    whole, _, frac = text.partition(".")
    return int(whole) * 100 + int(frac)


def test_live_supply_shows_held_credit_and_adds_up(page: Any, live: Live) -> None:
    page.goto(live.url + "/")
    assert cents_of(page, "#held") == 0
    live.buy(700)  # sold
    with httpx.Client(base_url=live.url) as http:  # held by an open quote
        assert http.post("/api/quotes", json={"credit_cents": 1450}).status_code == 201
    playwright_api.expect(page.locator("#held")).to_have_text("$14.50", timeout=8_000)
    sold, held, left = (cents_of(page, s) for s in ("#sold", "#held", "#left"))
    assert (sold, held) == (700, 1450)
    assert sold + held + left == cents_of(page, "#capacity") == 8900
    assert cents_of(page, "#remaining") == left
    assert page.locator("#max-dollars").inner_text() == "$67.50"
    assert "less a $1.00 safety margin" in page.locator("#capacity-note").inner_text()
