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


def migrate_at_once(database_url: str, processes: int = 3, **extra: str) -> list[subprocess.CompletedProcess[str]]:
    """``gateway migrate`` in ``processes`` processes started together (as serve, the worker and
    replicas do on a fresh database)."""
    env = gateway_env(database_url, **extra)
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    done = []
    for proc in started:
        stdout, stderr = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return done


def test_processes_migrating_at_once_wait_for_each_other(empty_database: str) -> None:
    # The lock must be held until the last migration commits, not only through the first one.
    for done in migrate_at_once(empty_database):
        assert done.returncode == 0, done.stderr[-2000:]
        assert "migrated to head" in done.stdout


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
