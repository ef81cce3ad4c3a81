"""The `gateway` command as an operator runs it: a separate process on a real database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_ADMIN_TOKEN": "cli-test-token-0123456789abcdefghij"}, **extra
    )
    return env


def run_gateway(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_migrate_takes_an_empty_database_to_head(empty_database: str) -> None:
    done = run_gateway("migrate", env=gateway_env(empty_database))
    assert done.returncode == 0, done.stderr
    assert "migrated to head" in done.stdout
    # Running it again is harmless.
    assert run_gateway("migrate", env=gateway_env(empty_database)).returncode == 0


def test_serve_migrates_then_answers_health_and_ready_and_stops_on_sigterm(empty_database: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--no-worker"],
        env=gateway_env(empty_database),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError(process.stderr.read() if process.stderr else "serve did not start") from None
                time.sleep(0.2)
        assert health.status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0


def test_unknown_command_is_a_usage_error() -> None:
    done = run_gateway("frobnicate", env=dict(os.environ))
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


def test_bad_port_option_is_a_usage_error(empty_database: str) -> None:
    done = run_gateway("serve", "--port", "-5", env=gateway_env(empty_database))
    assert done.returncode == 2
    assert "port" in done.stderr
