"""The `gateway` command as real processes, for tests that start, signal and kill them.

Output goes to a file, never to a pipe nobody reads: a pipe fills up and blocks a process that
logs a lot.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.test_cli import free_port

# The output file of every process started since the conftest's key guard last looked: it scans
# them when the test ends (a gateway process has a redactor of its own, which can miss a key too).
output_files: list[Path] = []


def process_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a test's gateway process: this machine's, minus any GATEWAY_ setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_DATABASE_URL": database_url,
            "GATEWAY_ADMIN_TOKEN": "reliability-admin-token-0123456789abcdef",
            "GATEWAY_ALLOW_PRIVATE_UPSTREAMS": "true",
            "GATEWAY_UPSTREAM_TIMEOUT_SECONDS": "2",
            "GATEWAY_UPSTREAM_CONNECT_TIMEOUT_SECONDS": "0.5",
            "GATEWAY_SUBMITTING_STALE_SECONDS": "3",
            "GATEWAY_WORKER_INTERVAL_SECONDS": "0.2",
            "GATEWAY_STATUS_SYNC_INTERVAL_SECONDS": "0.5",
            "GATEWAY_CATALOG_SYNC_INTERVAL_SECONDS": "0",
            "GATEWAY_RATE_LIMIT_PER_MINUTE": "0",
            "GATEWAY_LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


class GatewayProcess:
    """``python -m gateway.cli ARGS`` with stdout and stderr in one file."""

    def __init__(
        self, args: list[str], env: dict[str, str], log_path: Path | None = None, port: int | None = None
    ) -> None:
        self.port = port
        if log_path is None:
            handle, name = tempfile.mkstemp(prefix="gateway-", suffix=".log")
            os.close(handle)
            log_path = Path(name)
        self.log_path = log_path
        output_files.append(log_path)
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", *args], env=env, stdout=self._log, stderr=subprocess.STDOUT, text=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gateway exited early ({self.process.returncode}):\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"gateway did not become ready:\n{self.log()}")

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log.close()

    def stop(self) -> int:
        """SIGTERM (then SIGKILL if it does not stop in 30 s); the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


@contextmanager
def gateway(
    database_url: str, log_path: Path | None = None, *, worker: bool = True, **env: str
) -> Iterator[GatewayProcess]:
    """``gateway serve`` as a process (with its in-process worker unless told otherwise), ready."""
    port = free_port()
    args = ["serve", "--port", str(port)] + ([] if worker else ["--no-worker"])
    proc = GatewayProcess(args, process_env(database_url, **env), log_path, port)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@contextmanager
def worker_process(database_url: str, log_path: Path | None = None, **env: str) -> Iterator[GatewayProcess]:
    """``gateway worker`` as a process."""
    proc = GatewayProcess(["worker"], process_env(database_url, **env), log_path)
    try:
        yield proc
    finally:
        proc.stop()


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)
