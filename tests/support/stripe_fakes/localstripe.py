"""Run the ``localstripe`` emulator (installed in the venv) as a subprocess on a free port."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time

import httpx

from support.procs import free_port

TEST_API_KEY = "sk_test_FAKE_cheaptokens_not_a_real_key"


class LocalStripe:
    """``with LocalStripe() as ls: ls.base_url`` — started fresh, killed on exit."""

    def __init__(self, *, log_path: pathlib.Path | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalStripe:
        exe = pathlib.Path(sys.executable).with_name("localstripe")
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "localstripe"]
        # --from-scratch: never load another run's /tmp/localstripe.pickle.
        if self._log_path is not None:
            with open(self._log_path, "wb") as log:
                self._proc = subprocess.Popen(
                    [*command, "--port", str(self.port), "--from-scratch"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        else:
            self._proc = subprocess.Popen(
                [*command, "--port", str(self.port), "--from-scratch"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        # A start-up wait, not an assertion: give up only if it never answers.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"localstripe exited with {self._proc.returncode}")
            try:
                response = httpx.get(
                    f"{self.base_url}/v1/balance",
                    headers={"Authorization": f"Bearer {TEST_API_KEY}"},
                    timeout=2,
                )
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("localstripe did not answer within 30 s")

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
