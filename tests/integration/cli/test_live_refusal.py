"""``serve`` and ``worker`` refuse live Venice with settings that would give real keys away."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_refuse_to_start(command: str, tmp_path) -> None:
    """The reported attack: live Venice with payments left at their sandbox default."""
    env = {
        **os.environ,
        "CHEAPTOKENS_DATA_DIR": str(tmp_path),
        "CHEAPTOKENS_VENICE_MODE": "live",
        "CHEAPTOKENS_VENICE_ADMIN_KEYS": "main=VENICE_ADMIN_KEY_live_but_fake_for_tests",
    }
    env.pop("CHEAPTOKENS_PAYMENTS", None)
    r = subprocess.run(
        [sys.executable, "-m", "cheaptokens", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2
    assert "CHEAPTOKENS_PAYMENTS" in r.stderr and "CHEAPTOKENS_DATA_KEY" in r.stderr
    assert not (tmp_path / "cheaptokens.db").exists()  # refused before touching anything
