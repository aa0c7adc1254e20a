"""The storefront in Debian's Chromium: buy from the home page to a working key, the key
shown once, the docs, and the operator's login and refund. Screenshots of every page at
phone (375 px) and desktop widths go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import openai
import pytest

from cheaptokens.web.pages import DOCS
from support.live import ADMIN_PASSWORD, Live, live_shop

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = pathlib.Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_shop(tmp_path_factory.mktemp("browser"), now=NOON) as shop:
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
    context = browser.new_context(viewport=DESKTOP)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not [e for e in errors if "Content Security Policy" in e or "Error" in e], errors


@pytest.fixture(scope="session")
def shots(artifacts_dir: pathlib.Path) -> pathlib.Path:
    path = artifacts_dir / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shoot(page: Any, shots: pathlib.Path, name: str) -> None:
    """Full-page screenshots at phone and desktop widths; no sideways scrolling on a phone."""
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(150)
    page.screenshot(path=str(shots / f"{name}-375.png"), full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    page.set_viewport_size(DESKTOP)
    page.wait_for_timeout(150)
    page.screenshot(path=str(shots / f"{name}-desktop.png"), full_page=True)
    assert overflow <= 1, f"{name}: the page scrolls sideways at 375 px ({overflow} px)"


def test_buy_from_home_page_to_working_key(page: Any, live: Live, shots: pathlib.Path) -> None:
    page.goto(live.url + "/")
    price = page.locator("#price").inner_text()
    assert float(price) > 0
    assert page.locator("#curve #now-dot").count() == 1
    shoot(page, shots, "home")

    page.get_by_label("$10").check()
    page.get_by_role("button", name="Get my price").click()
    page.locator("#quote").wait_for(state="visible")
    assert page.locator("#quote-credit").inner_text() == "$10.00"
    assert 0 < int(page.locator("#quote-countdown").inner_text()) <= 60
    shoot(page, shots, "quote")

    page.get_by_role("button", name="Buy and pay").click()
    page.wait_for_url("**/checkout/sandbox/**")
    shoot(page, shots, "checkout")
    page.get_by_role("button", name="Pay").click()
    page.wait_for_url("**/orders/**")
    key_el = page.locator("#api-key")
    key_el.wait_for(state="visible", timeout=20_000)
    key = key_el.inner_text().strip()
    assert key.startswith("VENICE_INFERENCE_KEY_")
    assert "#token=" in page.url and "?" in page.url.split("#")[0]  # token only in the fragment
    assert "token" not in page.url.split("#")[0]
    assert key in page.locator("code[data-sample=python_chat_py]").inner_text()
    base_url = page.locator("#key-panel .base-url").inner_text().strip()
    assert base_url == live.venice_url
    shoot(page, shots, "order-key")

    # The key works with the openai SDK, as the Python sample says.
    with openai.OpenAI(api_key=key, base_url=base_url) as client:
        reply = client.chat.completions.create(
            model="llama-3.3-70b", messages=[{"role": "user", "content": "Say hello"}]
        )
        assert reply.choices[0].message.content
        # A long prompt, so the spend reaches whole cents (llama-3.3-70b: $0.70 per M input).
        client.chat.completions.create(
            model="llama-3.3-70b", messages=[{"role": "user", "content": "word " * 30_000}]
        )

    # The usage meter shows the spend.
    page.reload()
    page.locator("#usage").wait_for(state="visible", timeout=20_000)
    playwright_api.expect(page.locator("#usage-used")).not_to_have_text("$0.00")
    assert "At this rate you will use" in page.locator("#usage-forecast").inner_text()
    assert "%" in page.locator("#usage-forecast").inner_text()

    # "I saved it": the key disappears, and a reload shows only its last six characters.
    page.get_by_role("button", name="I saved it").click()
    page.locator("#key-saved").wait_for(state="visible")
    message = page.locator("#order-message").inner_text()
    assert "saved your key" in message and "Save it now" not in message, message
    assert key not in page.locator("#main").inner_text()  # not in the samples either
    page.reload()
    page.locator("#key-saved").wait_for(state="visible")
    assert page.locator("#key-panel").is_hidden()
    assert page.locator("#last6").inner_text() == "…" + key[-6:]
    assert key not in page.content()
    shoot(page, shots, "order-saved")


def test_order_page_without_its_link_explains_what_to_do(page: Any, live: Live) -> None:
    page.goto(live.url + "/orders/ord_unknown")
    page.locator("#need-token").wait_for(state="visible")
    assert "secret order link" in page.locator("#need-token").inner_text()


def test_docs_pages(page: Any, live: Live, shots: pathlib.Path) -> None:
    for slug, title in DOCS:
        page.goto(f"{live.url}/docs/{slug}")
        assert page.locator("article h1").inner_text() == title
        assert page.locator("nav[aria-label=Docs] a[aria-current=page]").inner_text() == title
        shoot(page, shots, f"docs-{slug or 'index'}")
    page.goto(live.url + "/docs/models")
    assert page.locator("table code", has_text="claude-sonnet-4-5").count() == 1


def test_dashboard_login_and_refund(page: Any, live: Live, shots: pathlib.Path) -> None:
    order = live.buy(300)
    assert order["final"]["status"] == "fulfilled"
    page.goto(live.url + "/admin")
    assert page.url.endswith("/admin/login")
    shoot(page, shots, "admin-login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    assert "Wrong user name or password" in page.locator("[role=alert]").inner_text()
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin")
    row = page.locator(f"tr[data-order={order['order_id']}]")
    assert "fulfilled" in row.inner_text()
    shoot(page, shots, "admin-dashboard")

    row.get_by_role("button", name=f"Refund order {order['order_id']}").click()
    page.wait_for_url("**/admin?done=*")
    assert "refund queued" in page.locator("[role=status]").inner_text()
    for _ in range(100):  # the in-process worker deletes the key, then refunds
        page.reload()
        if "refunded" in page.locator(f"tr[data-order={order['order_id']}]").inner_text():
            break
        time.sleep(0.1)
    assert "refunded" in page.locator(f"tr[data-order={order['order_id']}]").inner_text()
    shoot(page, shots, "admin-refunded")
