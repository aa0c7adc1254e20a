"""The state file: a restarted sandbox keeps every account, key, charge and limit window."""

from __future__ import annotations

import base64
import json
import pathlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests.unit.sandbox.sandbox_helpers import ADMIN, ADMIN_KEY, START, bearer, chat
from x402.mechanisms.evm.constants import ERR_NONCE_ALREADY_USED

from cheaptokens.config import (
    SANDBOX_X402_NETWORK,
    SANDBOX_X402_PAY_TO,
    SANDBOX_X402_USDC,
    SANDBOX_X402_USDC_NAME,
    SANDBOX_X402_USDC_VERSION,
)
from cheaptokens.sandbox import AccountSpec, Sandbox, StateError
from cheaptokens.sandbox.ledger import FOLD_AFTER
from support.agents import new_wallet, sign

SPEC = AccountSpec(ADMIN_KEY, diem=Decimal("100"), usd=Decimal("5"))


def boot(path: pathlib.Path, now: datetime | None = START, **kw: Any) -> Sandbox:
    return Sandbox([SPEC], now=now, state_path=path, seconds_per_million_tokens=0, **kw)


def new_key(c: TestClient, **fields: Any) -> dict[str, Any]:
    body = {"apiKeyType": "INFERENCE", "description": "kept", **fields}
    response = c.post("/api/v1/api_keys", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def views(c: TestClient) -> tuple[Any, Any]:
    keys = c.get("/api/v1/api_keys", headers=ADMIN).json()
    balance = c.get("/api/v1/billing/balance", headers=ADMIN).json()
    return keys, balance


def test_keys_charges_and_limits_survive_a_restart(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    first = boot(path)
    with TestClient(first.app) as c:
        capped = new_key(
            c,
            consumptionLimit={"diem": 0.0001, "usd": 0},
            limitPeriod="MONTH",
            modelPrivacy="PRIVATE_TEXT",
            expiresAt="2026-04-01",
        )
        plain = new_key(c, description="plain")
        gone = new_key(c, description="deleted")
        c.delete(f"/api/v1/api_keys?id={gone['id']}", headers=ADMIN)
        c.patch("/api/v1/api_keys", headers=ADMIN, json={"id": plain["id"], "description": "p2"})
        assert chat(c, capped["apiKey"]).status_code == 200
        assert chat(c, plain["apiKey"]).status_code == 200
        before = views(c)
    second = boot(path)
    with TestClient(second.app) as c:
        assert views(c) == before
        # The capped key is still capped (its charge was kept), the other still works.
        assert chat(c, capped["apiKey"]).status_code == 402
        assert chat(c, plain["apiKey"]).status_code == 200
        refused = c.post(
            "/api/v1/chat/completions",
            headers=bearer(capped["apiKey"]),
            json={"model": "openai-gpt-54-pro", "messages": [{"role": "user", "content": "x"}]},
        )
        assert refused.status_code == 403  # modelPrivacy kept
        assert chat(c, gone["apiKey"]).status_code == 401
        assert chat(c, ADMIN_KEY).status_code == 200  # the ADMIN key is still the ADMIN key


def test_the_state_file_holds_no_secret(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    sb = boot(path)
    with TestClient(sb.app) as c:
        secrets = [new_key(c)["apiKey"], new_key(c, apiKeyType="ADMIN")["apiKey"]]
    text = path.read_text()
    for secret in [ADMIN_KEY, *secrets]:
        assert secret not in text and secret[len("VENICE_") + 10 :] not in text
    assert json.loads(text)["format"] == 1


def test_a_created_key_is_on_disk_before_its_answer(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    sb = boot(path)
    with TestClient(sb.app) as c:
        data = new_key(c)
        on_disk = path.read_text()
    assert data["id"] in on_disk


def test_an_account_already_in_the_state_keeps_its_state(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    with TestClient(boot(path).app) as c:
        chat(c, ADMIN_KEY)
        spent = views(c)[1]
    other = AccountSpec("VENICE_ADMIN_KEY_sandbox_0002", diem=Decimal(7))
    changed = AccountSpec(ADMIN_KEY, diem=Decimal("5"), usd=Decimal("0"))
    sb = Sandbox([changed, other], now=START, state_path=path)
    with TestClient(sb.app) as c:
        assert views(c)[1] == spent  # allocation 100 and what was spent, not the new 5
        got = c.get("/api/v1/billing/balance", headers=bearer(other.admin_key)).json()
        assert got["diemEpochAllocation"] == 7  # a new account is added
    assert len(Sandbox([], now=START, state_path=path).accounts_summary()) == 2


def test_same_day_restart_keeps_spent_diem_and_midnight_still_refills(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "state.json"
    with TestClient(boot(path).app) as c:
        data = new_key(c, consumptionLimit={"diem": 0.0001, "usd": 0})
        chat(c, data["apiKey"])
        spent = Decimal(str(views(c)[1]["balances"]["diem"]))
    assert spent < 100
    later = boot(path, now=START + timedelta(hours=11, minutes=59))
    with TestClient(later.app) as c:
        assert Decimal(str(views(c)[1]["balances"]["diem"])) == spent
        assert chat(c, data["apiKey"]).status_code == 402  # still capped today
    next_day = boot(path, now=datetime(2026, 3, 11, 0, 0, 1, tzinfo=UTC))
    with TestClient(next_day.app) as c:
        assert views(c)[1]["balances"]["diem"] == 100
        assert chat(c, data["apiKey"]).status_code == 200  # a fresh EPOCH window


def test_the_clock_is_restored_unless_a_start_time_is_given(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    running = Sandbox([SPEC], now=datetime(2030, 1, 1, tzinfo=UTC), frozen=False, state_path=path)
    with TestClient(running.app) as c:
        c.post("/_sandbox/clock", json={"advance_seconds": 3600})
    restored = Sandbox([SPEC], frozen=False, state_path=path)
    assert restored.clock.now() >= datetime(2030, 1, 1, 1, tzinfo=UTC)
    assert restored.clock.now() < datetime(2030, 1, 1, 2, tzinfo=UTC)
    assert not restored.clock.frozen
    frozen = boot(path)  # an explicit start time wins
    assert frozen.clock.now() == START
    with TestClient(frozen.app) as c:
        c.get("/api/v1/api_keys", headers=ADMIN)  # any request writes the moved clock
    assert Sandbox([SPEC], state_path=path).clock.now() == START


def test_the_creation_window_survives_a_restart(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    with TestClient(boot(path).app) as c:
        for _ in range(20):
            new_key(c)
    with TestClient(boot(path).app) as c:
        again = c.post(
            "/api/v1/api_keys", headers=ADMIN, json={"apiKeyType": "INFERENCE", "description": "x"}
        )
        assert again.status_code == 429


def test_old_charges_are_folded_and_lifetime_usage_kept(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    sb = boot(path)
    with TestClient(sb.app) as c:
        data = new_key(c, consumptionLimit={"diem": 50}, limitPeriod="LIFETIME")
        first = Decimal(str(chat(c, data["apiKey"]).json()["cost"]["diem"]))
        sb.clock.advance((FOLD_AFTER + timedelta(days=1)).total_seconds())
        second = Decimal(str(chat(c, data["apiKey"], content="again").json()["cost"]["diem"]))
    saved = next(
        k for k in json.loads(path.read_text())["accounts"][0]["keys"] if k["id"] == data["id"]
    )
    assert len(saved["charges"]) == 1 and Decimal(saved["archived"]["DIEM"]) == first
    with TestClient(boot(path, now=None).app) as c:
        got = c.get(f"/api/v1/api_keys/{data['id']}", headers=ADMIN).json()["data"]
        assert Decimal(got["currentPeriodUsage"]["diem"]) == (first + second).quantize(
            Decimal("0.0001")
        )


def test_a_broken_state_file_stops_the_start_and_is_left_alone(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(StateError, match="not a sandbox state file"):
        boot(path)
    assert path.read_text() == "{not json"
    path.write_text(json.dumps({"format": 99, "accounts": []}))
    with pytest.raises(StateError, match="unknown state format"):
        boot(path)


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    sb = boot(path)
    seen: list[str] = []
    with TestClient(sb.app) as c:
        for _ in range(5):
            new_key(c)
            seen.append(path.read_text())
            chat(c, ADMIN_KEY)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert all(json.loads(text)["format"] == 1 for text in seen)


def test_a_failed_write_keeps_the_previous_file(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    sb = boot(path)
    with TestClient(sb.app) as c:
        new_key(c)
        before = path.read_text()

        def broken(src: str, dst: str) -> None:
            raise OSError("disk full")

        monkeypatch.setattr("cheaptokens.sandbox.state.os.replace", broken)
        with pytest.raises(OSError, match="disk full"):
            new_key(c)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


# ----------------------------------------------------------------------------- x402 chain
def _settle_body(wallet: Any, cents: int) -> dict[str, Any]:
    """A facilitator ``/settle`` body: ``wallet`` pays ``cents`` to the sandbox's pay-to."""
    requirement = {
        "scheme": "exact",
        "network": SANDBOX_X402_NETWORK,
        "asset": SANDBOX_X402_USDC,
        "amount": str(cents * 10_000),
        "payTo": SANDBOX_X402_PAY_TO,
        "maxTimeoutSeconds": 300,
        "extra": {"name": SANDBOX_X402_USDC_NAME, "version": SANDBOX_X402_USDC_VERSION},
    }
    payload = json.loads(base64.b64decode(sign(wallet, requirement)))
    return {"x402Version": 2, "paymentPayload": payload, "paymentRequirements": requirement}


def test_x402_wallets_and_used_authorizations_survive_a_restart(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    wallet = new_wallet()
    wallets = f"/_sandbox/x402/wallets/{wallet.address}"
    with TestClient(boot(path).app) as c:
        funded = c.post("/_sandbox/x402/wallets", json={"address": wallet.address, "usdc": "25"})
        assert funded.status_code == 200, funded.text
        assert funded.json() == {"address": wallet.address, "usdc": "25.000000"}
        body = _settle_body(wallet, 123)
        settled = c.post("/x402/settle", json=body)
        assert settled.status_code == 200 and settled.json()["success"] is True, settled.text
        assert c.get(wallets).json()["usdc"] == "23.770000"
    with TestClient(boot(path).app) as c:
        assert c.get(wallets).json() == {"address": wallet.address, "usdc": "23.770000"}
        pay_to = c.get(f"/_sandbox/x402/wallets/{SANDBOX_X402_PAY_TO}").json()["usdc"]
        assert pay_to == "1.230000"
        # The authorization's nonce is still spent: the same authorization moves nothing.
        again = c.post("/x402/settle", json=body)
        assert again.status_code == 200 and again.json()["success"] is False
        assert again.json()["errorReason"] == ERR_NONCE_ALREADY_USED
        assert c.get(wallets).json()["usdc"] == "23.770000"


@pytest.mark.parametrize(
    "body",
    [
        {"usdc": "5"},
        {"address": "0x1234", "usdc": "5"},
        {"address": "not an address", "usdc": "5"},
        {"address": "0x000000000000000000000000000000000000dEaD", "usdc": "-1"},
        {"address": "0x000000000000000000000000000000000000dEaD", "usdc": "1.0000001"},
        {"address": "0x000000000000000000000000000000000000dEaD", "usdc": "lots"},
    ],
)
def test_a_bad_wallet_funding_is_a_400_and_changes_nothing(
    tmp_path: pathlib.Path, body: dict[str, Any]
) -> None:
    sb = boot(tmp_path / "state.json")
    before = sb.x402.fingerprint()
    with TestClient(sb.app) as c:
        r = c.post("/_sandbox/x402/wallets", json=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]
        assert c.get("/_sandbox/x402/wallets/0x1234").status_code == 400
    assert sb.x402.fingerprint() == before
