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
