"""The key page after a purchase, in Chromium at phone and desktop widths: top up the same key
(pay at the sandbox checkout, the cap rises) and reissue a lost key (the old one stops working);
each resulting key is used with the openai SDK."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from support.live import Live, live_shop

from .test_storefront import ARGS, CHROMIUM, DESKTOP, NOON, PHONE, playwright_api, shoot

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_shop(tmp_path_factory.mktemp("key-page"), now=NOON) as shop:
        yield shop


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed (make test installs it: scripts/apt.sh)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(params=[DESKTOP, PHONE], ids=["desktop", "phone"])
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport=request.param)
    pg = context.new_page()
    pg.on("dialog", lambda d: d.accept())  # "Your current key stops working at once"
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, errors


@pytest.fixture(scope="session")
def shots(artifacts_dir: pathlib.Path) -> pathlib.Path:
    path = artifacts_dir / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def works(live: Live, key: str) -> bool:
    with openai.OpenAI(api_key=key, base_url=live.venice_url, max_retries=0) as client:
        try:
            reply = client.chat.completions.create(
                model="llama-3.3-70b", messages=[{"role": "user", "content": "Say hello"}]
            )
        except openai.AuthenticationError:
            return False
    return bool(reply.choices[0].message.content)


def shown_key(page: Any) -> str:
    el = page.locator("#api-key")
    el.wait_for(state="visible", timeout=20_000)
    return el.inner_text().strip()


def test_top_up_then_reissue_from_the_key_page(page: Any, live: Live, shots: pathlib.Path) -> None:
    order = live.buy(500)
    page.goto(f"{live.url}/orders/{order['order_id']}#token={order['order_token']}")
    first = shown_key(page)
    assert works(live, first)

    # Top up $3 on the same key: to the checkout, pay, back to the key page.
    page.locator("#topup-amount").fill("3")
    page.get_by_role("button", name="Top up").click()
    page.wait_for_url("**/checkout/sandbox/**")
    assert "$3.00" in page.content()
    page.get_by_role("button", name="Pay").click()
    page.wait_for_url("**/orders/**")
    page.locator("#topups li", has_text="applied").wait_for(timeout=20_000)
    assert shown_key(page) == first  # the same key
    status = live_status(live, order)
    assert status["key"]["credit_cents"] == 800 and status["total_credit_cents"] == 800
    shoot(page, shots, "key-topped-up")

    # Lost it: a new key; the old one stops working.
    assert "stops working at once" in page.locator("#reissue-panel").inner_text()
    page.get_by_role("button", name="Get a new key").click()
    page.locator("#replaced").wait_for(state="visible", timeout=20_000)
    page.wait_for_function(
        "(old) => { const k = document.getElementById('api-key').textContent.trim();"
        " return k && k !== old; }",
        arg=first,
        timeout=20_000,
    )
    second = shown_key(page)
    assert second != first and works(live, second) and not works(live, first)
    assert "you asked for a new key" in page.locator("#replaced").inner_text()
    shoot(page, shots, "key-reissued")


def live_status(live: Live, order: dict[str, Any]) -> dict[str, Any]:
    import httpx

    r = httpx.get(
        f"{live.url}/api/orders/{order['order_id']}",
        headers={"Authorization": f"Bearer {order['order_token']}"},
    )
    body: dict[str, Any] = r.json()
    return body
