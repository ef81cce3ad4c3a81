"""The three ways to run the simulator: async in-process, on its own thread, and as a process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from gateway.simulator import Dialect, FaultRule, SimulatorConfig, SimulatorThread, running_simulator
from gateway.simulator.command import build_parser, config_from_args

LINK = "https://instagram.com/p/xyz"


def test_thread_runner_from_sync_code() -> None:
    config = SimulatorConfig(dialect=Dialect.PERFECTPANEL, api_key="thread-key", speed=0)
    with SimulatorThread(config) as sim, httpx.Client(timeout=2.0) as http:
        assert sim.url.startswith("http://127.0.0.1:")
        assert sim.url.endswith("/api/v2")
        answer = http.post(sim.url, data={"key": "thread-key", "action": "add", "service": "111",
                                          "link": LINK, "quantity": "1000"}).json()  # fmt: skip
        assert answer == {"order": 10001}
        assert sim.state.order(10001).charge == sim.state.get_order(10001).request.charge
        assert sim.request_count("add") == 1
        assert http.get(f"{sim.control_url}/state").json()["orders"] == 1
        url = sim.url
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, data={"action": "balance"}, timeout=1.0)


async def test_thread_runner_next_to_another_loop() -> None:
    # The gateway's async tests run in their own loop; the simulator must not need that loop.
    with SimulatorThread(SimulatorConfig(speed=0)) as sim:
        async with httpx.AsyncClient(timeout=2.0) as http:
            balances = await asyncio.gather(
                *(http.post(sim.url, data={"key": sim.api_key, "action": "balance"}) for _ in range(20))
            )
        assert {r.json()["balance"] for r in balances} == {"1000.00"}
        sim.set_faults(FaultRule(kind="hang"))
        hanging = asyncio.create_task(
            asyncio.to_thread(httpx.post, sim.url, data={"key": sim.api_key, "action": "balance"}, timeout=10.0)
        )
        await asyncio.sleep(0.2)
        started = time.perf_counter()
    # Stopping released the hanging request (as a dropped connection) instead of waiting for it.
    assert time.perf_counter() - started < 3.0
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await hanging


async def test_accelerated_clock_runs_by_itself() -> None:
    config = SimulatorConfig(speed=3600.0, partial_probability=0.0, cancel_probability=0.0)
    async with running_simulator(config) as sim, httpx.AsyncClient(timeout=2.0) as http:
        form = {"key": sim.api_key, "action": "add", "service": "402", "link": LINK}
        order_id = (await http.post(sim.url, data=form)).json()["order"]
        # At an hour per second, pending + processing + delivery (at most ~10 simulated minutes)
        # take at most ~0.2 s.
        for _ in range(50):
            status = (await http.post(sim.url, data={"key": sim.api_key, "action": "status",
                                                     "order": order_id})).json()  # fmt: skip
            if status["status"] == "Completed":
                break
            await asyncio.sleep(0.02)
        assert status == {"status": "Completed", "charge": "0.35", "start_count": status["start_count"],
                          "remains": "0", "currency": "USD"}  # fmt: skip


def test_command_line_options() -> None:
    args = build_parser().parse_args(
        ["--port", "9000", "--dialect", "perfectpanel", "--key", "k", "--speed", "10", "--seed", "5",
         "--balance", "20", "--catalog-size", "300"]
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.dialect, config.api_key, config.speed, config.seed) == (Dialect.PERFECTPANEL, "k", 10.0, 5)
    assert len(config.catalog) == 300
    assert str(config.starting_balance) == "20"
    assert args.host == "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_main_serves_as_a_process() -> None:
    port = _free_port()
    command = [sys.executable, "-m", "gateway.simulator", "--port", str(port), "--dialect", "perfectpanel",
               "--key", "cli-key", "--speed", "0"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 10.0
        while True:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/api/v2", data={"key": "cli-key", "action": "balance"})
                break
            except httpx.ConnectError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the simulator did not come up"
                time.sleep(0.05)
        assert answer.json() == {"balance": "1000.00000", "currency": "USD"}
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells why it ended.
    assert process.returncode in (0, -signal.SIGTERM)
    assert b"/api/v2" in stderr
    assert b"Shutting down" in stderr
