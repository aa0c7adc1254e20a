"""Real OS processes of the shop for tests: the sandbox, web servers, workers, CLI calls."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, *, tries: int = 200) -> None:
    for _ in range(tries):
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited early with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def cheaptokens(*args: str) -> list[str]:
    return [sys.executable, "-m", "cheaptokens", *args]


@contextmanager
def process(
    args: list[str], *, env: dict[str, str] | None = None, log: pathlib.Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    out = log.open("ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(args, env=env or dict(os.environ), stdout=out, stderr=out)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]


@contextmanager
def sandbox(
    *accounts: str, log: pathlib.Path | None = None, extra: tuple[str, ...] = ()
) -> Iterator[str]:
    """``cheaptokens sandbox`` with ``KEY:DIEM`` accounts; yields its ``/api/v1`` URL."""
    port = free_port()
    args = cheaptokens("sandbox", "--port", str(port), *extra)
    for account in accounts:
        args += ["--account", account]
    with process(args, log=log) as proc:
        url = f"http://127.0.0.1:{port}/api/v1"
        wait_http(f"{url}/models", proc)
        yield url


def run(
    args: list[str], env: dict[str, str], *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
