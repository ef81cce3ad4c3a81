"""A running gateway process with a synced simulator and a funded customer, for real clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from gateway.catalog.sync import sync_provider
from gateway.runtime import Runtime
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.runner import RunningSimulator, SimulatorThread
from tests.factories import make_customer, make_provider
from tests.reliability.conftest import GatewayProcess, gateway


@dataclass
class LiveGateway:
    proc: GatewayProcess
    sim: RunningSimulator
    key: str
    customer_id: int
    services: dict[int, int]
    database_url: str

    @property
    def api(self) -> str:
        return f"{self.proc.url}/api/v2"


@pytest.fixture
def live_env() -> dict[str, str]:
    """Extra settings of the live gateway process (a test module overrides this fixture)."""
    return {}


@pytest.fixture
async def live(runtime: Runtime, database_url: str, live_env: dict[str, str]) -> AsyncIterator[LiveGateway]:
    with SimulatorThread(SimulatorConfig(speed=0)) as sim:
        provider_id = await make_provider(runtime, api_url=sim.url, api_key=sim.api_key, name="sim")
        await sync_provider(runtime.sessions, runtime.providers, provider_id)
        customer_id, key = await make_customer(runtime, balance="100")
        async with runtime.engine.connect() as conn:
            services = dict((await conn.execute(text("SELECT upstream_service_id, id FROM services"))).all())
        with gateway(database_url, **live_env) as proc:
            yield LiveGateway(proc, sim, key, customer_id, services, database_url)
