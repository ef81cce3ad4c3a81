"""Crash tests: the gateway is a real process, killed with SIGKILL at each boundary of the life of
an order (via failpoints), then restarted. Afterwards: nothing charged or refunded twice, nothing
sent upstream twice, nothing lost, every unknown outcome visible to the operator. Each test runs
with the gateway's processes on a direct connection, and through PgBouncer in transaction mode
(``database_route``); the checks read the database directly."""

from __future__ import annotations

import signal
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from gateway.catalog.sync import sync_provider
from gateway.runtime import Runtime
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.faults import FaultRule
from gateway.simulator.runner import RunningSimulator, SimulatorThread
from tests.conftest import DatabaseRoute, _run_sync
from tests.factories import make_customer, make_provider
from tests.reliability.conftest import gateway, wait_for, worker_process

pytestmark = pytest.mark.slow

FOLLOWERS = 102
ADMIN = {"Authorization": "Bearer reliability-admin-token-0123456789abcdef"}


class Db:
    """Synchronous reads for code that runs while processes do the work."""

    def __init__(self, url: str) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(False)

    def fetch(self, sql: str, *args: Any) -> list[Any]:
        async def run() -> list[Any]:
            conn = await asyncpg.connect(self.dsn)
            try:
                return list(await conn.fetch(sql, *args))
            finally:
                await conn.close()

        rows: list[Any] = _run_sync(run())
        return rows

    def value(self, sql: str, *args: Any) -> Any:
        rows = self.fetch(sql, *args)
        return rows[0][0] if rows else None

    def check_money(self) -> None:
        assert (
            self.value(
                "SELECT count(*) FROM customers c WHERE c.balance < 0 OR c.balance <>"
                " (SELECT coalesce(sum(amount), 0) FROM ledger_entries e WHERE e.customer_id = c.id)"
            )
            == 0
        )
        assert (
            self.value(
                "SELECT count(*) FROM orders o WHERE (SELECT count(*) FROM ledger_entries e"
                " WHERE e.order_id = o.id AND e.kind = 'charge') <> 1"
            )
            == 0
        )
        assert self.value("SELECT count(*) FROM orders WHERE refunded > charge") == 0


async def _prepare(runtime: Runtime, sim: RunningSimulator) -> tuple[str, int]:
    provider_id = await make_provider(runtime, api_url=sim.url, api_key=sim.api_key, name="sim")
    await sync_provider(runtime.sessions, runtime.providers, provider_id)
    _, key = await make_customer(runtime, balance="100")
    async with runtime.engine.connect() as conn:
        from sqlalchemy import text

        service = await conn.scalar(text("SELECT id FROM services WHERE upstream_service_id = :u"), {"u": FOLLOWERS})
    return key, int(service)


def _add(url: str, key: str, service: int) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v2",
        data={"key": key, "action": "add", "service": service, "link": "https://i.com/x", "quantity": 1000},
        timeout=15,
    )


def _killed(proc: Any) -> None:
    assert proc.process.wait(timeout=15) == -signal.SIGKILL


@pytest.mark.parametrize(("failpoint", "adds_received"), [("after_charge", 0), ("after_send", 1)])
async def test_api_killed_while_placing(
    runtime: Runtime, database_url: str, database_route: DatabaseRoute, failpoint: str, adds_received: int
) -> None:
    db = Db(database_url)
    via = database_route
    with SimulatorThread(SimulatorConfig(speed=0)) as sim:
        key, service = await _prepare(runtime, sim)
        with gateway(via.url, worker=False, GATEWAY_FAILPOINTS=failpoint, **via.env) as gw:
            with pytest.raises(httpx.TransportError):
                _add(gw.url, key, service)
            _killed(gw)
        assert db.value("SELECT state FROM orders") == "submitting"
        assert db.value("SELECT balance FROM customers") == Decimal("99.55")
        assert sim.request_count("add") == adds_received
        with gateway(via.url, **via.env) as gw:
            wait_for(lambda: db.value("SELECT state FROM orders") == "unknown", timeout=30)
            unknown = httpx.get(f"{gw.url}/admin/orders", params={"state": "unknown"}, headers=ADMIN).json()
            assert len(unknown) == 1
            # What the operator needs survived the kill: when the send began, and that its outcome
            # never came (the process stopped), so the upstream panel must be checked.
            assert unknown[0]["submitted_at"] is not None
            assert "stopped while sending" in unknown[0]["last_error"]
            # The restarted gateway keeps working and never re-sends the unknown order.
            assert "order" in _add(gw.url, key, service).json()
        assert sim.request_count("add") == adds_received + 1
        db.check_money()


async def test_worker_killed_after_claiming_a_queued_order(
    runtime: Runtime, database_url: str, database_route: DatabaseRoute
) -> None:
    db = Db(database_url)
    via = database_route
    with SimulatorThread(SimulatorConfig(speed=0)) as sim:
        key, service = await _prepare(runtime, sim)
        sim.set_faults(FaultRule(kind="error", action="add", error="Not enough funds on balance"))
        with gateway(via.url, worker=False, **via.env) as gw:
            assert "order" in _add(gw.url, key, service).json()
        assert db.value("SELECT state FROM orders") == "queued"
        sim.clear_faults()
        db.fetch("UPDATE orders SET next_attempt_at = now()")
        with worker_process(via.url, GATEWAY_FAILPOINTS="dispatch_after_claim", **via.env) as worker:
            _killed(worker)
        assert db.value("SELECT state FROM orders") == "submitting"
        assert sim.request_count("add") == 1  # only the refused first try
        with worker_process(via.url, **via.env):
            wait_for(lambda: db.value("SELECT state FROM orders") == "unknown", timeout=30)
        assert sim.request_count("add") == 1
        db.check_money()


@pytest.mark.parametrize("failpoint", ["sync_after_fetch", "sync_after_apply"])
async def test_worker_killed_around_a_refund(
    runtime: Runtime, database_url: str, database_route: DatabaseRoute, failpoint: str
) -> None:
    db = Db(database_url)
    via = database_route
    with SimulatorThread(SimulatorConfig(speed=0)) as sim:
        key, service = await _prepare(runtime, sim)
        with gateway(via.url, worker=False, **via.env) as gw:
            order_id = _add(gw.url, key, service).json()["order"]
        upstream_id = db.value("SELECT upstream_order_id FROM orders")
        sim.state.force_order(upstream_id, "Canceled")
        with worker_process(via.url, GATEWAY_FAILPOINTS=failpoint, **via.env) as worker:
            _killed(worker)
        refunds_after_crash = db.value("SELECT count(*) FROM ledger_entries WHERE kind = 'refund'")
        assert refunds_after_crash == (1 if failpoint == "sync_after_apply" else 0)
        # The lease of the killed worker runs out (made immediate here), a new worker takes over.
        db.fetch("UPDATE orders SET next_check_at = now()")
        with worker_process(via.url, **via.env):
            wait_for(lambda: db.value("SELECT status FROM orders WHERE id = $1", order_id) == "Canceled", timeout=30)
            wait_for(lambda: db.value("SELECT last_checked_at FROM orders") is not None)
        assert db.value("SELECT count(*) FROM ledger_entries WHERE kind = 'refund'") == 1
        assert db.value("SELECT balance FROM customers") == Decimal("100")
        assert sim.request_count("add") == 1
        db.check_money()


async def test_the_evidence_of_an_unknown_add_is_durable_when_it_is_recorded(
    runtime: Runtime, database_url: str, database_route: DatabaseRoute
) -> None:
    """Killed right after an unknown outcome was recorded: its upstream attempt is already in the
    database (the call log of a send is written with its outcome, never left in a buffer)."""
    db = Db(database_url)
    with SimulatorThread(SimulatorConfig(speed=0)) as sim:
        key, service = await _prepare(runtime, sim)
        sim.set_faults(FaultRule(kind="drop", action="add", when="after"))
        with gateway(database_route.url, worker=False, GATEWAY_FAILPOINTS="after_record", **database_route.env) as gw:
            with pytest.raises(httpx.TransportError):
                _add(gw.url, key, service)
            _killed(gw)
        assert db.value("SELECT state FROM orders") == "unknown"
        calls = db.fetch("SELECT action, outcome, order_id, created_at FROM upstream_calls")
        assert [(c["action"], c["outcome"]) for c in calls] == [("add", "unknown")]
        assert calls[0]["order_id"] == db.value("SELECT id FROM orders")
        assert calls[0]["created_at"] >= db.value("SELECT submitted_at FROM orders")
        assert sim.request_count("add") == 1
        db.check_money()
