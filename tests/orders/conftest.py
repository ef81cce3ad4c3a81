"""A shop for order tests: the app, a simulated upstream with its catalog synced, a customer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import text

from gateway.app import create_app
from gateway.catalog.sync import sync_provider
from gateway.orders.sync import check_statuses
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.runner import RunningSimulator, running_simulator
from tests.conftest import make_settings, serving
from tests.factories import make_customer, make_provider


@dataclass
class Shop:
    client: httpx.AsyncClient
    runtime: Runtime
    sim: RunningSimulator
    provider_id: int
    customer_id: int
    key: str
    services: dict[int, int]  # upstream service id -> gateway service id
    app: Litestar

    def client_from(self, address: str, **headers: str) -> httpx.AsyncClient:
        """Another client of the same app, calling from ``address`` (the app's lifespan is the
        shop's): for limits and allowlists per client address."""
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))  # type: ignore[arg-type]
        return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)

    async def v2(self, key: str | None = None, **params: Any) -> Any:
        response = await self.client.post("/api/v2", data={"key": key or self.key, **params})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        return response.json()

    async def order(self, order_id: int) -> Any:
        async with self.runtime.engine.connect() as conn:
            return (await conn.execute(text("SELECT * FROM orders WHERE id = :id"), {"id": order_id})).one()

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.runtime.engine.connect() as conn:
            return await conn.scalar(text(sql), params)

    async def execute(self, sql: str, **params: Any) -> None:
        async with self.runtime.engine.begin() as conn:
            await conn.execute(text(sql), params)

    async def sync_statuses(self) -> int:
        """Make every followed order due and run one pass of the status sync; how many were checked.
        (Orders a held final status stopped asking about stay where they are.)"""
        await self.execute(
            "UPDATE orders SET next_check_at = now() WHERE state = 'placed' AND next_check_at IS NOT NULL"
        )
        return await check_statuses(
            self.runtime.orders, self.runtime.providers, self.runtime.policy.status_sync_interval_seconds
        )

    async def check_money(self) -> None:
        """The invariants: every balance equals its ledger sum and is never negative; refunds
        never exceed charges; one charge entry per order."""
        bad = await self.scalar(
            """
            SELECT count(*) FROM customers c
            WHERE c.balance < 0 OR c.balance <> (SELECT coalesce(sum(amount), 0) FROM ledger_entries e WHERE e.customer_id = c.id)
            """
        )
        assert bad == 0
        assert await self.scalar("SELECT count(*) FROM orders WHERE refunded > charge") == 0
        assert (
            await self.scalar(
                "SELECT count(*) FROM orders o WHERE (SELECT count(*) FROM ledger_entries e WHERE e.order_id = o.id AND e.kind = 'charge') <> 1"
            )
            == 0
        )
        assert (
            await self.scalar(
                "SELECT count(*) FROM orders o WHERE o.refunded <> coalesce((SELECT sum(amount) FROM ledger_entries e WHERE e.order_id = o.id AND e.kind = 'refund'), 0)"
            )
            == 0
        )


def shop_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"upstream_timeout_seconds": 2.0, "upstream_connect_timeout_seconds": 0.5}
    values.update(overrides)
    return make_settings(**values)


@pytest.fixture
def settings() -> Settings:
    return shop_settings()


@pytest.fixture
def sim_config() -> SimulatorConfig:
    return SimulatorConfig(speed=0)


@contextlib.asynccontextmanager
async def shop_with(
    settings: Settings, database_url: str, sim_config: SimulatorConfig | None = None
) -> AsyncIterator[Shop]:
    """A shop on ``settings``: the app, a simulator synced as its provider, a customer with 100."""
    async with running_simulator(sim_config or SimulatorConfig(speed=0)) as sim:
        app: Litestar = create_app(settings, database_url=database_url)
        runtime: Runtime = app.state.runtime
        async with serving(app) as client:
            provider_id = await make_provider(runtime, api_url=sim.url, api_key=sim.api_key, name="sim")
            await sync_provider(runtime.sessions, runtime.providers, provider_id)
            customer_id, key = await make_customer(runtime, balance="100")
            async with runtime.engine.connect() as conn:
                rows = (await conn.execute(text("SELECT upstream_service_id, id FROM services"))).all()
            yield Shop(client, runtime, sim, provider_id, customer_id, key, dict(rows), app)


@pytest.fixture
async def shop(settings: Settings, database_url: str, sim_config: SimulatorConfig) -> AsyncIterator[Shop]:
    async with shop_with(settings, database_url, sim_config) as result:
        yield result


D = Decimal
