"""Bank-style tests: concurrent customers spending, checking, canceling and topping up while the
upstream ends orders Completed, Partial and Canceled (and, in the storm, misbehaves in every way).
At every check and at the end: no negative balance, each balance equals its ledger sum, and total
deposits equal total balances plus total net charges."""

from __future__ import annotations

import asyncio
import random

import pytest

from gateway.settings import Settings
from gateway.simulator.faults import FaultRule
from gateway.worker import Worker
from tests.conftest import DatabaseRoute
from tests.orders.conftest import shop_settings
from tests.reliability.harness import open_bank

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(database_route: DatabaseRoute) -> Settings:
    """Each test runs twice: on a direct connection, and through PgBouncer in transaction mode."""
    return shop_settings(
        upstream_timeout_seconds=1.0,
        upstream_connect_timeout_seconds=0.3,
        submitting_stale_seconds=2.0,
        upstream_breaker_reset_seconds=0.2,
        database_pooler=database_route.pooler,
    )


async def test_bank(settings: Settings, database_route: DatabaseRoute) -> None:
    async with open_bank(settings, database_route.url, customers=15) as bank:
        worker = Worker(bank.runtime)
        stop = asyncio.Event()
        background = asyncio.gather(bank.upstream_and_worker(stop, worker), bank.checker(stop))
        await asyncio.gather(*(bank.client_session(i, steps=25) for i in range(30)))
        stop.set()
        _, checks = await background
        assert checks > 3
        await bank.settle(worker)
        await bank.check_final()
        statuses = await bank.scalar(
            "SELECT count(DISTINCT status) FROM orders WHERE status IN ('Completed', 'Partial', 'Canceled')"
        )
        assert statuses == 3  # every ending happened
        assert await bank.scalar("SELECT count(*) FROM ledger_entries WHERE kind = 'refund'") > 0


STORM = [
    FaultRule(kind="hang", action="add"),
    FaultRule(kind="drop", action="add"),
    FaultRule(kind="drop", action="add", when="after"),
    FaultRule(kind="http_5xx", status_code=503),
    FaultRule(kind="html"),
    FaultRule(kind="malformed_json"),
    FaultRule(kind="empty"),
    FaultRule(kind="error", error="Not enough funds on balance", action="add"),
    FaultRule(kind="error", error="Spam protection, wait 7 seconds"),
    FaultRule(kind="hang", action="status", latency=2.0),
    FaultRule(kind="latency", latency=0.3),
]


async def test_upstream_fault_storm(settings: Settings, database_route: DatabaseRoute) -> None:
    async with open_bank(settings, database_route.url, customers=10, seed=11) as bank:
        worker = Worker(bank.runtime)
        stop = asyncio.Event()
        rng = random.Random(3)

        async def storm() -> None:
            while not stop.is_set():
                bank.sim.set_faults(rng.choice(STORM))
                await asyncio.sleep(rng.uniform(0.05, 0.4))
                bank.sim.clear_faults()
                await asyncio.sleep(rng.uniform(0.0, 0.2))

        background = asyncio.gather(bank.upstream_and_worker(stop, worker), bank.checker(stop), storm())
        await asyncio.gather(*(bank.client_session(i, steps=15) for i in range(20)))
        stop.set()
        await background
        bank.sim.clear_faults()
        await asyncio.sleep(settings.submitting_stale_seconds + 0.5)
        await bank.settle(worker)
        # Every order is in a defined state; nothing is left half-sent.
        assert await bank.scalar("SELECT count(*) FROM orders WHERE state = 'submitting'") == 0
        unknown = await bank.scalar("SELECT count(*) FROM orders WHERE state = 'unknown'")
        assert unknown > 0  # the storm did cut answers off
        await bank.check_final()
