"""Operations tests run the `gateway` command as real processes; their output goes to a file (a pipe
would fill up and block a process that logs at DEBUG)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from gateway.catalog.sync import sync_provider
from gateway.runtime import Runtime
from gateway.simulator.runner import RunningSimulator
from tests.factories import make_customer, make_provider
from tests.reliability.conftest import process_env
from tests.test_cli import free_port

FOLLOWERS = 102  # a plain (link + quantity) service of the simulator's catalog


class LoggedProcess:
    """``python -m gateway.cli ARGS`` with stdout and stderr in one file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port
        self.log_path = log_path
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
def serve_process(database_url: str, log_path: Path, *, worker: bool = True, **env: str) -> Iterator[LoggedProcess]:
    port = free_port()
    args = ["serve", "--port", str(port)] + ([] if worker else ["--no-worker"])
    proc = LoggedProcess(args, process_env(database_url, **env), log_path, port)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@contextmanager
def worker_process(database_url: str, log_path: Path, **env: str) -> Iterator[LoggedProcess]:
    proc = LoggedProcess(["worker"], process_env(database_url, **env), log_path)
    try:
        yield proc
    finally:
        proc.stop()


@dataclass(frozen=True)
class Shop:
    provider_id: int
    customer_id: int
    key: str
    service: int  # the gateway's id of the simulator's followers service


async def shop(runtime: Runtime, sim: RunningSimulator, balance: str = "100") -> Shop:
    """A provider for ``sim`` with its catalog synced, and a funded customer."""
    provider_id = await make_provider(runtime, api_url=sim.url, api_key=sim.api_key, name="sim")
    await sync_provider(runtime, provider_id)
    customer_id, key = await make_customer(runtime, balance=balance)
    async with runtime.engine.connect() as conn:
        service = await conn.scalar(text("SELECT id FROM services WHERE upstream_service_id = :u"), {"u": FOLLOWERS})
    return Shop(provider_id, customer_id, key, int(service))


def add_order(url: str, key: str, service: int, **headers: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v2",
        data={"key": key, "action": "add", "service": service, "link": "https://instagram.com/ops", "quantity": 1000},
        headers=headers,
        timeout=20,
    )
