"""Graceful shutdown: SIGTERM while an ``add`` is in flight upstream. The API finishes the request,
the worker its step; the order ends ``placed``, the process exits 0, and nothing is left half-done."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx

from gateway.runtime import Runtime
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.faults import FaultRule
from gateway.simulator.runner import SimulatorThread
from tests.factories import place
from tests.operations.conftest import add_order, shop
from tests.processes import gateway, worker_process
from tests.reliability.conftest import wait_for
from tests.reliability.test_crash import Db

SLOW_ADD = FaultRule(kind="latency", action="add", latency=1.5)


def check_nothing_left_half_done(db: Db) -> None:
    assert db.value("SELECT count(*) FROM orders WHERE state IN ('submitting', 'queued', 'unknown')") == 0
    assert db.value("SELECT count(*) FROM ledger_entries WHERE kind = 'charge'") == db.value(
        "SELECT count(*) FROM orders"
    )
    assert (
        db.value(
            "SELECT count(*) FROM customers c WHERE c.balance <>"
            " (SELECT coalesce(sum(amount), 0) FROM ledger_entries e WHERE e.customer_id = c.id)"
        )
        == 0
    )


async def test_sigterm_lets_an_add_in_flight_finish(runtime: Runtime, database_url: str, tmp_path: Path) -> None:
    db = Db(database_url)
    with SimulatorThread(SimulatorConfig(speed=0)) as sim:
        setup = await shop(runtime, sim)
        with gateway(database_url, tmp_path / "serve.log", GATEWAY_LOG_LEVEL="INFO") as gw:
            sim.set_faults(SLOW_ADD)
            answers: list[httpx.Response] = []
            client = threading.Thread(target=lambda: answers.append(add_order(gw.url, setup.key, setup.service)))
            client.start()
            wait_for(lambda: db.value("SELECT state FROM orders") == "submitting", interval=0.02)
            gw.signal(signal.SIGTERM)
            client.join(timeout=20)
            assert gw.wait() == 0, gw.log()
        (answer,) = answers
        order_id = answer.json()["order"]
        assert db.value("SELECT state FROM orders WHERE id = $1", order_id) == "placed"
        assert db.value("SELECT upstream_order_id FROM orders WHERE id = $1", order_id) is not None
        assert sim.request_count("add") == 1
        check_nothing_left_half_done(db)
        assert "worker stopped" in gw.log()


async def test_gateway_worker_finishes_its_send_on_sigterm(runtime: Runtime, database_url: str, tmp_path: Path) -> None:
    db = Db(database_url)
    with SimulatorThread(SimulatorConfig(speed=0)) as sim:
        setup = await shop(runtime, sim)
        # The upstream is out of funds: the order is charged and queued for the worker.
        sim.set_faults(FaultRule(kind="error", action="add", error="Not enough funds on balance"))
        params = {"service": str(setup.service), "link": "https://instagram.com/ops", "quantity": "1000"}
        order_id = await place(runtime, setup.customer_id, params, "req-queued")
        assert db.value("SELECT state FROM orders") == "queued"
        sim.set_faults(SLOW_ADD)
        db.fetch("UPDATE orders SET next_attempt_at = now()")
        with worker_process(database_url, tmp_path / "worker.log") as worker:
            wait_for(lambda: db.value("SELECT state FROM orders") == "submitting", interval=0.02)
            worker.signal(signal.SIGTERM)
            assert worker.wait() == 0, worker.log()
        assert db.value("SELECT state FROM orders WHERE id = $1", order_id) == "placed"
        assert sim.request_count("add") == 2  # the refused try, then the one in flight at SIGTERM
        check_nothing_left_half_done(db)
