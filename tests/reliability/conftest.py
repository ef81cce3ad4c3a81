"""Helpers for tests that run the gateway as real processes and kill them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.test_cli import free_port


def process_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_DATABASE_URL": database_url,
            "GATEWAY_ADMIN_TOKEN": "reliability-admin-token",
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
    def __init__(self, args: list[str], env: dict[str, str], port: int | None) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gateway exited early: {self.output()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("gateway did not become ready")

    def output(self) -> str:
        if self.process.poll() is None:
            return ""
        return self.process.stdout.read() if self.process.stdout else ""

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextmanager
def gateway(database_url: str, *, worker: bool = True, **env: str) -> Iterator[GatewayProcess]:
    """``gateway serve`` as a process (with its in-process worker unless told otherwise)."""
    port = free_port()
    args = ["serve", "--port", str(port)] + ([] if worker else ["--no-worker"])
    proc = GatewayProcess(args, process_env(database_url, **env), port)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@contextmanager
def worker_process(database_url: str, **env: str) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(["worker"], process_env(database_url, **env), None)
    try:
        yield proc
    finally:
        proc.stop()


def wait_for(check: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


# The in-process shop (app + simulator + customer) of the order tests, for the security checks.
from tests.orders.conftest import settings, shop, sim_config  # noqa: E402

__all__ = ["settings", "shop", "sim_config"]
