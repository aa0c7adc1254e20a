"""``cheaptokens sandbox`` argument handling (the server itself is tested live elsewhere)."""

from __future__ import annotations

import json
import pathlib
from decimal import Decimal

import pytest

from cheaptokens.cli import build_parser
from cheaptokens.cli.sandbox import build_sandbox


def test_accounts_from_flags_repeats_and_config(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "sandbox.json"
    config.write_text(
        json.dumps(
            {
                "accounts": [
                    {"admin_key": "VENICE_ADMIN_KEY_sandbox_cfg1", "diem": "7", "usd": "1.5"}
                ],
                "failed_request_threshold": 5,
            }
        )
    )
    args = build_parser().parse_args(
        [
            "sandbox",
            "--admin-key",
            "VENICE_ADMIN_KEY_sandbox_flag",
            "--diem",
            "100",
            "--account",
            "VENICE_ADMIN_KEY_sandbox_rep1:20:3",
            "--config",
            str(config),
        ]
    )
    sandbox = build_sandbox(args)
    summary = [(a["diemEpochAllocation"], a["usd"]) for a in sandbox.accounts_summary()]
    assert summary == [
        (Decimal(100), Decimal(0)),
        (Decimal(7), Decimal("1.5")),
        (Decimal(20), Decimal(3)),
    ]
    assert sandbox.venice.budget.threshold == 5
    assert args.func.__name__ == "run"


def test_default_account_and_bad_values() -> None:
    sandbox = build_sandbox(build_parser().parse_args(["sandbox"]))
    assert [a["adminKeyLast6"] for a in sandbox.accounts_summary()] == ["x_0000"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sandbox", "--account", "nodiem"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sandbox", "--diem", "-1"])


def test_state_file_and_run_rate(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "deep" / "sandbox-state.json"
    args = build_parser().parse_args(
        ["sandbox", "--state", str(state), "--seconds-per-million-tokens", "0"]
    )
    sandbox = build_sandbox(args)
    assert sandbox.state_path == state and state.exists()  # written at start
    assert sandbox.venice.seconds_per_million_tokens == 0
    again = build_sandbox(build_parser().parse_args(["sandbox", "--state", str(state)]))
    assert again.accounts_summary() == sandbox.accounts_summary()  # same account, same id
    assert again.venice.seconds_per_million_tokens == 2.5
    config = tmp_path / "sandbox.json"
    config.write_text(json.dumps({"seconds_per_million_tokens": 10}))
    configured = build_sandbox(build_parser().parse_args(["sandbox", "--config", str(config)]))
    assert configured.venice.seconds_per_million_tokens == 10
    for bad in ("-1", "nan", "inf", "fast"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["sandbox", "--seconds-per-million-tokens", bad])


def test_a_broken_state_file_is_reported_not_overwritten(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "sandbox-state.json"
    state.write_text("garbage")
    args = build_parser().parse_args(["sandbox", "--state", str(state)])
    assert args.func(args) == 2
    assert "not a sandbox state file" in capsys.readouterr().out
    assert state.read_text() == "garbage"


def test_serve_keeps_the_offline_sandbox_in_the_data_dir(tmp_path: pathlib.Path) -> None:
    from starlette.testclient import TestClient

    from cheaptokens.cli.serve import build_sandbox as serve_sandbox
    from cheaptokens.config import SANDBOX_ADMIN_KEY, Settings

    settings = Settings(data_dir=tmp_path / "var")
    admin = {"Authorization": f"Bearer {SANDBOX_ADMIN_KEY}"}
    first = serve_sandbox(settings)
    assert first.state_path == tmp_path / "var" / "sandbox-state.json"
    with TestClient(first.app) as c:
        secret = c.post(
            "/api/v1/api_keys", headers=admin, json={"apiKeyType": "INFERENCE", "description": "s"}
        ).json()["data"]["apiKey"]
    with TestClient(serve_sandbox(settings).app) as c:  # `make run` again
        limits = c.get(
            "/api/v1/api_keys/rate_limits", headers={"Authorization": f"Bearer {secret}"}
        )
        assert limits.status_code == 200
