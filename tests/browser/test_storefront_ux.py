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

from support.live import ADMIN_PASSWORD, Live, live_shop

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


@pytest.fixture
def late_sold_out(tmp_path: pathlib.Path) -> Iterator[Live]:
    """23:30 UTC with the day's $89.00 all sold: the "now" marker in the chart's top right."""
    with live_shop(tmp_path, now=datetime(2026, 11, 25, 23, 30, tzinfo=UTC)) as shop:
        assert shop.buy(8900)["final"]["status"] == "fulfilled"
        yield shop


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed (make test installs it: scripts/apt.sh)")
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


# The chart's labels and "now" marker, measured in the page (CSS px) and in the SVG's units.
TICKS_JS = """() => [...document.querySelectorAll('#curve text.tick')].map(t => {
  const r = t.getBoundingClientRect();
  return {text: t.textContent, height: r.height,
          font: parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a};
})"""
INSIDE_JS = """(id) => {
  const svg = document.getElementById('curve'), vb = svg.viewBox.baseVal;
  const label = document.getElementById(id), b = label.getBBox();
  const outer = svg.getBoundingClientRect(), r = label.getBoundingClientRect();
  return {box: [b.x, b.y, b.width, b.height], view: [vb.x, vb.y, vb.width, vb.height],
          inside: b.x >= vb.x && b.y >= vb.y && b.x + b.width <= vb.x + vb.width
                  && b.y + b.height <= vb.y + vb.height,
          onScreen: r.left >= outer.left && r.top >= outer.top && r.right <= outer.right
                    && r.bottom <= outer.bottom};
}"""


def assert_chart_readable(page: Any) -> None:
    ticks = page.evaluate(TICKS_JS)
    assert len(ticks) == 15
    small = [t for t in ticks if t["height"] < 10 or t["font"] < 10]
    assert not small, small
    for label in [t["text"] for t in ticks]:
        box = page.evaluate(
            """(text) => { const t = [...document.querySelectorAll('#curve text.tick')]
                 .find(e => e.textContent === text); const b = t.getBBox();
                 const vb = t.ownerSVGElement.viewBox.baseVal;
                 return b.x >= vb.x && b.x + b.width <= vb.x + vb.width
                        && b.y >= vb.y && b.y + b.height <= vb.y + vb.height; }""",
            label,
        )
        assert box, f"axis label {label} is cut off"


def test_chart_labels_are_readable_on_a_phone(page: Any, live: Live) -> None:
    page.goto(live.url + "/")
    assert_chart_readable(page)
    now = page.evaluate(INSIDE_JS, "now-label")
    assert now["inside"] and now["onScreen"], now


def test_now_label_stays_inside_the_chart_when_sold_out_late(
    page: Any, late_sold_out: Live
) -> None:
    page.goto(late_sold_out.url + "/")
    assert "sold out" in page.locator("#buy-form").locator("..").inner_text()
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(100)
        served = page.evaluate(INSIDE_JS, "now-label")
        assert served["inside"] and served["onScreen"], (width, served)
    # home.js moves the marker on its first refresh: still inside.
    page.wait_for_function("document.getElementById('now-label').hasAttribute('text-anchor')")
    page.wait_for_timeout(300)
    moved = page.evaluate(INSIDE_JS, "now-label")
    assert moved["inside"] and moved["onScreen"], moved


def test_admin_tables_fit_a_phone(page: Any, live: Live) -> None:
    live.buy(300)
    page.goto(live.url + "/admin/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin")
    tables = page.evaluate(
        """() => [...document.querySelectorAll('main table')].map(t => ({
             width: t.getBoundingClientRect().width,
             right: t.getBoundingClientRect().right,
             scrolls: t.parentElement.scrollWidth > t.parentElement.clientWidth}))"""
    )
    assert len(tables) >= 4
    for table in tables:
        assert table["right"] <= PHONE["width"] and not table["scrolls"], tables
    # Every value keeps its column's name beside it.
    labels = page.evaluate(
        """() => [...document.querySelector('#orders tbody tr').cells].map(
             c => [getComputedStyle(c, '::before').content, c.textContent.trim()])"""
    )
    assert ['"Credit"', "$3.00"] in labels, labels
    assert_chart_readable(page)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1


def test_quote_discount_is_the_live_discount(page: Any, live: Live) -> None:
    page.goto(live.url + "/")
    page.get_by_label("$5").check()
    with page.expect_response("**/api/quotes") as answer:
        page.get_by_role("button", name="Get my price").click()
    quote = answer.value.json()
    page.locator("#quote").wait_for(state="visible")
    assert page.locator("#quote-discount").inner_text() == quote["discount_percent"] + "\u00a0%"
    assert page.locator("#quote-rate").inner_text() == quote["price_cents_per_dollar"]
    assert "rounded down to the cent" in page.locator("#quote").inner_text()


def test_declined_checkout_offers_to_try_again_with_the_same_amount(page: Any, live: Live) -> None:
    page.goto(live.url + "/")
    page.get_by_label("$10").check()
    page.get_by_role("button", name="Get my price").click()
    page.get_by_role("button", name="Buy and pay").click()
    page.wait_for_url("**/checkout/sandbox/**")
    page.get_by_role("button", name="Decline").click()
    page.wait_for_url("**/orders/**")
    again = page.locator("#try-again-link")
    playwright_api.expect(again).to_have_text("Try again with $10.00 of credit")
    assert "declined" in page.locator("#try-again").inner_text()
    assert page.locator("#samples").is_hidden() and page.locator("#key-panel").is_hidden()
    assert "VENICE_INFERENCE_KEY" not in page.locator("#main").inner_text()
    again.click()
    page.wait_for_url("**/?amount=10.00")
    assert page.get_by_label("$10").is_checked()
