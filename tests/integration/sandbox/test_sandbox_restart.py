"""``cheaptokens sandbox --state FILE`` as a real OS process: killed and restarted, it still
knows every key it made, and the ``openai`` SDK can use them."""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import httpx
import openai
import pytest

from support.procs import cheaptokens, free_port, wait_http

ADMIN_KEY = "VENICE_ADMIN_KEY_sandbox_restart_01"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
MODEL = "zai-org-glm-5-1"
HELLO = [{"role": "user", "content": "hello after a restart"}]


@contextmanager
def sandbox_process(
    state: pathlib.Path, port: int, log: pathlib.Path
) -> Iterator[subprocess.Popen[bytes]]:
    args = cheaptokens(
        "sandbox",
        "--port",
        str(port),
        "--admin-key",
        ADMIN_KEY,
        "--diem",
        "100",
        "--state",
        str(state),
    )
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=out)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v1/models", proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def stop(proc: subprocess.Popen[bytes], how: signal.Signals) -> None:
    proc.send_signal(how)
    proc.wait(timeout=20)
    assert proc.returncode in (0, -how), proc.returncode


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_key_made_before_a_kill_works_after_the_restart(
    tmp_path: pathlib.Path, how: signal.Signals
) -> None:
    state, log, port = tmp_path / "sandbox-state.json", tmp_path / "sandbox.log", free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    with sandbox_process(state, port, log) as proc:
        made = httpx.post(
            f"{base}/api_keys",
            headers=ADMIN,
            timeout=10,
            json={
                "apiKeyType": "INFERENCE",
                "description": "sold before the crash",
                "consumptionLimit": {"diem": 5, "usd": 0},
            },
        )
        assert made.status_code == 200, made.text
        data = made.json()["data"]
        first = openai.OpenAI(api_key=data["apiKey"], base_url=base, max_retries=0, timeout=10)
        cost = Decimal(
            str(
                (first.chat.completions.create(model=MODEL, messages=HELLO).model_extra or {})[
                    "cost"
                ]["diem"]
            )
        )
        stop(proc, how)  # at once: no grace period for a SIGKILL
    saved = state.read_text()
    assert data["id"] in saved and data["apiKey"] not in saved and ADMIN_KEY not in saved

    with sandbox_process(state, port, log):
        client = openai.OpenAI(api_key=data["apiKey"], base_url=base, max_retries=0, timeout=10)
        answer = client.chat.completions.create(model=MODEL, messages=HELLO)
        assert answer.choices[0].message.content
        second = Decimal(str((answer.model_extra or {})["cost"]["diem"]))
        assert MODEL in {m.id for m in client.models.list()}
        key = httpx.get(f"{base}/api_keys/{data['id']}", headers=ADMIN, timeout=10).json()["data"]
        assert key["description"] == "sold before the crash"
        assert Decimal(key["currentPeriodUsage"]["diem"]) == (cost + second).quantize(
            Decimal("0.0001")
        )
        balance = httpx.get(f"{base}/billing/balance", headers=ADMIN, timeout=10).json()
        assert Decimal(str(balance["balances"]["diem"])) == 100 - cost - second
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(
                api_key="VENICE_INFERENCE_KEY_never_made", base_url=base, max_retries=0, timeout=10
            ).chat.completions.create(model=MODEL, messages=HELLO)
    assert json.loads(state.read_text())["format"] == 1


def test_a_key_killed_right_after_its_creation_answer_is_kept(tmp_path: pathlib.Path) -> None:
    """SIGKILL the moment the creation answer arrives: the write happened before it."""
    state, log, port = tmp_path / "sandbox-state.json", tmp_path / "sandbox.log", free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    secrets = []
    with sandbox_process(state, port, log) as proc:
        for n in range(5):
            made = httpx.post(
                f"{base}/api_keys",
                headers=ADMIN,
                timeout=10,
                json={"apiKeyType": "INFERENCE", "description": f"k{n}"},
            )
            secrets.append(made.json()["data"]["apiKey"])
        proc.kill()
        proc.wait(timeout=10)
    with sandbox_process(state, port, log):
        for secret in secrets:
            limits = httpx.get(
                f"{base}/api_keys/rate_limits",
                headers={"Authorization": f"Bearer {secret}"},
                timeout=10,
            )
            assert limits.status_code == 200, limits.text
