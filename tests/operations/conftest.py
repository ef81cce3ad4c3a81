"""Operations tests run the `gateway` command as real processes (tests.processes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import text

from gateway.catalog.sync import sync_provider
from gateway.runtime import Runtime
from gateway.simulator.runner import RunningSimulator
from tests.factories import make_customer, make_provider

FOLLOWERS = 102  # a plain (link + quantity) service of the simulator's catalog


@dataclass(frozen=True)
class Shop:
    provider_id: int
    customer_id: int
    key: str
    service: int  # the gateway's id of the simulator's followers service


async def shop(runtime: Runtime, sim: RunningSimulator, balance: str = "100") -> Shop:
    """A provider for ``sim`` with its catalog synced, and a funded customer."""
    provider_id = await make_provider(runtime, api_url=sim.url, api_key=sim.api_key, name="sim")
    await sync_provider(runtime.sessions, runtime.providers, provider_id)
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
