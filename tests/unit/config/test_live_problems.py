"""Live Venice refuses every setting that would give real keys away or lose them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cheaptokens.config import SANDBOX_ADMIN_KEY, SANDBOX_X402_REFUND_KEY, Settings

SAFE = {
    "venice_mode": "live",
    "venice_admin_keys": "main=VENICE_ADMIN_KEY_live_but_fake_for_tests",
    "payments": "stripe",
    "stripe_secret_key": "sk_live_fake_for_tests",
    "stripe_webhook_secret": "whsec_fake_for_tests",
    "data_key": "A" * 43 + "=",
    # x402 on Base with its USDC, through a (made-up) facilitator, to a made-up address
    "x402_facilitator_url": "https://facilitator.example",
    "x402_network": "eip155:8453",
    "x402_asset": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
    "x402_asset_name": "USD Coin",
    "x402_pay_to": "0x1111111111111111111111111111111111111111",
}


def problems(**changes: object) -> list[str]:
    return Settings(**{**SAFE, **changes}).live_problems()  # type: ignore[arg-type]


def test_a_complete_live_configuration_passes() -> None:
    assert problems() == []


def test_sandbox_mode_is_never_refused() -> None:
    assert Settings(payments="sandbox").live_problems() == []


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"payments": "sandbox"}, "CHEAPTOKENS_PAYMENTS"),
        ({"stripe_secret_key": "sk_test_fake"}, "CHEAPTOKENS_STRIPE_SECRET_KEY"),
        ({"stripe_webhook_secret": ""}, "CHEAPTOKENS_STRIPE_WEBHOOK_SECRET"),
        ({"stripe_api_base": "http://127.0.0.1:9999"}, "CHEAPTOKENS_STRIPE_API_BASE"),
        ({"venice_base_url": "http://127.0.0.1:8001/api/v1"}, "CHEAPTOKENS_VENICE_BASE_URL"),
        ({"venice_admin_keys": ""}, "CHEAPTOKENS_VENICE_ADMIN_KEYS"),
        ({"venice_admin_keys": f"a={SANDBOX_ADMIN_KEY}"}, "CHEAPTOKENS_VENICE_ADMIN_KEYS"),
        ({"data_key": ""}, "CHEAPTOKENS_DATA_KEY"),
    ],
)
def test_each_unsafe_setting_is_named(changes: dict[str, object], setting: str) -> None:
    found = problems(**changes)
    assert len(found) == 1 and setting in found[0]


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"x402_facilitator_url": ""}, "CHEAPTOKENS_X402_FACILITATOR_URL"),
        (
            {"x402_facilitator_url": "http://127.0.0.1:8001/x402"},
            "CHEAPTOKENS_X402_FACILITATOR_URL",
        ),
        ({"x402_network": "eip155:84532"}, "CHEAPTOKENS_X402_NETWORK"),
        ({"x402_network": "eip155:40240402"}, "CHEAPTOKENS_X402_NETWORK"),
        ({"x402_asset": "0x5dC0000000000000000000000000000000005DC0"}, "CHEAPTOKENS_X402_ASSET"),
        ({"x402_pay_to": "0xC4Ea900000000000000000000000000000000001"}, "CHEAPTOKENS_X402_PAY_TO"),
        ({"x402_refund_key": SANDBOX_X402_REFUND_KEY}, "CHEAPTOKENS_X402_REFUND_KEY"),
        (
            {"x402_refund_key": SANDBOX_X402_REFUND_KEY.removeprefix("0x").upper()},
            "CHEAPTOKENS_X402_REFUND_KEY",
        ),
    ],
)
def test_x402_with_a_sandbox_facilitator_or_a_test_network_is_refused(
    change: dict[str, str], setting: str
) -> None:
    found = problems(**change)
    assert len(found) == 1 and setting in found[0]


def test_x402_switched_off_needs_none_of_its_settings() -> None:
    assert problems(x402_enabled=False, x402_facilitator_url="", x402_network="eip155:84532") == []


def test_the_refund_wallet_is_the_sandboxs_offline_and_none_live_unless_set() -> None:
    assert Settings().refund_key == SANDBOX_X402_REFUND_KEY
    assert Settings(**SAFE).refund_key is None  # type: ignore[arg-type]
    own = "0x" + "ab" * 32
    assert problems(x402_refund_key=own) == []
    assert Settings(**{**SAFE, "x402_refund_key": own}).refund_key == own  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["0x1234", "not a key", "0x" + "g" * 64, "0x" + "a" * 66])
def test_a_refund_key_that_is_no_private_key_is_refused_without_echoing_it(key: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(x402_refund_key=key)
    assert "CHEAPTOKENS_X402_REFUND_KEY" in str(caught.value)
    assert key not in str(caught.value)
