"""Real OS processes of the shop for tests: the sandbox, web servers, workers, CLI calls."""

from __future__ import annotations

import os
import pathlib
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

#: Ports handed out by this process, never handed out twice (a server may not be up yet).
_HANDED: set[int] = set()
_RANDOM = random.SystemRandom()  # not the global one, which tests may seed
#: Below Linux's ephemeral range (32768-60999), so the kernel never gives one of these ports to
#: an outgoing connection or to a ``bind(0)`` between our check and the server's own bind.
_LOW, _HIGH = 20_000, 32_000


def worker_ports() -> range:
    """The slice of ``_LOW.._HIGH`` that this pytest-xdist worker (``gwN``) picks ports from;
    the whole of it outside xdist. Two workers can never be handed the same port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    size = (_HIGH - _LOW) // max(count, 1)
    start = _LOW + (index % max(count, 1)) * size
    return range(start, start + size)


def free_port() -> int:
    """A port nobody listens on, from this worker's own slice (random, checked by binding)."""
    ports = worker_ports()
    for _ in range(200):
        port = _RANDOM.choice(ports)
        if port in _HANDED:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED.add(port)
        return port
    raise RuntimeError(f"no free port in {ports}")


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
