"""Alerts and the live meter in Debian's Chromium, at desktop and phone (375 px) widths: a
buyer registers a webhook in the quote box, sees its signing secret once on the key page,
then the delivery of ``key.ready`` in the page's log; the usage meter moves by itself as the
key spends. Screenshots go to ``test-artifacts/screenshots/``."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import openai
import pytest
from standardwebhooks.webhooks import Webhook

from support.live import Live, live_shop
from support.receiver import receiver

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = pathlib.Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SIZES = {"desktop": {"width": 1280, "height": 900}, "375": {"width": 375, "height": 740}}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_shop(tmp_path_factory.mktemp("alerts-browser"), now=NOON) as shop:
        yield shop


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed (make test installs it: scripts/apt.sh)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def shots(artifacts_dir: pathlib.Path) -> pathlib.Path:
    path = artifacts_dir / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.parametrize("size", ["desktop", "375"])
def test_webhook_on_the_page_delivery_in_the_log_and_a_live_meter(
    browser: Any, live: Live, shots: pathlib.Path, size: str
) -> None:
    context = browser.new_context(viewport=SIZES[size])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    expect = playwright_api.expect
    with receiver() as rec:
        page.goto(live.url + "/")
        page.get_by_label("$5").check()
        page.get_by_role("button", name="Get my price").click()
        page.locator("#quote").wait_for(state="visible")
        page.locator("#alerts-box summary").click()
        page.get_by_label("Webhook URL").fill(rec.url)
        page.screenshot(path=str(shots / f"alerts-quote-{size}.png"), full_page=True)
        page.get_by_role("button", name="Buy and pay").click()
        page.wait_for_url("**/checkout/sandbox/**")
        page.get_by_role("button", name="Pay").click()
        page.wait_for_url("**/orders/**")

        # The signing secret, once.
        panel = page.locator("#webhook-secret-panel")
        panel.wait_for(state="visible", timeout=20_000)
        secret = page.locator("#webhook-secret").inner_text().strip()
        assert secret.startswith("whsec_")
        page.locator("#api-key").wait_for(state="visible", timeout=20_000)
        key = page.locator("#api-key").inner_text().strip()

        # key.ready arrives at the receiver, signed, and shows in the page's delivery log.
        [got] = rec.wait_for(1, timeout=20)
        event = Webhook(secret).verify(got.body, got.headers)
        assert event["type"] == "key.ready"
        row = page.locator("#deliveries-body tr[data-status=delivered]")
        expect(row).to_have_count(1, timeout=20_000)
        assert "key.ready" in row.inner_text() and "204" in row.inner_text()
        assert rec.url in page.locator("#webhook-target").inner_text()

        page.get_by_role("button", name="I saved the secret").click()
        expect(panel).to_be_hidden()

        # The meter moves by itself as the key spends (no reload).
        page.locator("#usage").wait_for(state="visible", timeout=20_000)
        before = page.locator("#usage-used").inner_text()
        with openai.OpenAI(api_key=key, base_url=live.venice_url) as client:
            client.chat.completions.create(
                model="llama-3.3-70b", messages=[{"role": "user", "content": "word " * 30_000}]
            )
        expect(page.locator("#usage-used")).not_to_have_text(before, timeout=20_000)
        expect(page.locator("#usage-rate")).to_contain_text("per hour", timeout=20_000)
        forecast = page.locator("#usage-forecast").inner_text()
        assert "At this rate" in forecast
        assert "runs out at" in forecast or "lasts until midnight" in forecast, forecast
        assert "UTC" in page.locator("#usage-updated").inner_text()
        page.screenshot(path=str(shots / f"alerts-order-{size}.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the order page scrolls sideways at {size} ({overflow} px)"

        # Reloaded, the page no longer shows the secret.
        page.reload()
        page.locator("#alerts").wait_for(state="visible", timeout=20_000)
        assert page.locator("#webhook-secret-panel").is_hidden()
        assert secret not in page.content()
    context.close()
    assert errors == []
