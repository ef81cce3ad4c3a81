"""The other ways a sync starts: `gateway sync`, the worker's periodic loop; and the live balance."""

from __future__ import annotations

import subprocess
import sys

import httpx
from sqlalchemy import func, select

from gateway.catalog.sync import PeriodicSync
from gateway.models import Provider, Service
from gateway.runtime import Runtime
from gateway.simulator.catalog import default_catalog
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.faults import FaultRule
from gateway.simulator.runner import RunningSimulator, SimulatorThread
from tests.factories import make_provider
from tests.test_cli import gateway_env


async def _service_count(runtime: Runtime) -> int:
    async with runtime.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(Service))).scalar_one())


async def test_cli_sync_reports_progress_and_summary(runtime: Runtime, database_url: str) -> None:
    with SimulatorThread(SimulatorConfig(speed=0)) as sim:
        await make_provider(runtime, api_url=sim.url, api_key=sim.api_key, name="simulated")
        await make_provider(runtime, api_url="http://127.0.0.1:9/api/v2", name="down")
        env = gateway_env(
            database_url, GATEWAY_ALLOW_PRIVATE_UPSTREAMS="true", GATEWAY_UPSTREAM_CONNECT_TIMEOUT_SECONDS="1"
        )
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "sync"], env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 1  # one provider failed
    assert f"simulated: created {len(default_catalog())}, updated 0, disabled 0, unchanged 0" in done.stdout
    assert "down: FAILED" in done.stdout
    assert "[##############################]" in done.stderr
    assert sim.api_key not in done.stdout + done.stderr
    assert await _service_count(runtime) == len(default_catalog())


async def test_cli_sync_of_unknown_provider_fails(database_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "sync", "--provider", "42"],
        env=gateway_env(database_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "provider 42 not found" in done.stdout


async def test_periodic_sync_syncs_due_providers_and_backs_off_on_failure(
    runtime: Runtime, simulator: RunningSimulator
) -> None:
    provider_id = await make_provider(runtime, api_url=simulator.url, api_key=simulator.api_key)
    periodic = PeriodicSync(runtime.sessions, runtime.providers, interval=3600)
    assert await periodic.step(now=0) == 1
    assert await _service_count(runtime) == len(default_catalog())
    assert await periodic.step(now=1) == 0  # not due again for an hour
    async with runtime.engine.begin() as conn:
        await conn.execute(Provider.__table__.update().values(last_sync_at=None))
    simulator.set_faults(FaultRule(kind="html"))
    assert await periodic.step(now=2) == 0
    calls = simulator.request_count("services")
    assert await periodic.step(now=3) == 0  # backing off: no call
    assert simulator.request_count("services") == calls
    simulator.clear_faults()
    assert await periodic.step(now=10_000) == 1
    assert provider_id


async def test_provider_balance_is_asked_live(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, simulator: RunningSimulator
) -> None:
    provider_id = await make_provider(
        runtime, api_url=simulator.url, api_key=simulator.api_key, low_balance_threshold="100"
    )
    simulator.set_balance("42.50")
    response = await client.get(f"/admin/providers/{provider_id}/balance", headers=admin_headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["balance"], body["currency"], body["low_balance"]) == ("42.50", "USD", True)
    # A GET records nothing: the provider still shows no balance.
    provider = (await client.get(f"/admin/providers/{provider_id}", headers=admin_headers)).json()
    assert (provider["last_balance"], provider["low_balance"]) == (None, False)

    # The refresh asks the same way, records the answer and audits it.
    refreshed = await client.post(f"/admin/providers/{provider_id}/balance/refresh", headers=admin_headers)
    assert refreshed.status_code == 200
    assert {k: v for k, v in refreshed.json().items() if k != "checked_at"} == {
        k: v for k, v in body.items() if k != "checked_at"
    }
    provider = (await client.get(f"/admin/providers/{provider_id}", headers=admin_headers)).json()
    assert provider["last_balance"] == "42.50"
    assert provider["low_balance"] is True
    assert provider["last_balance_at"] == refreshed.json()["checked_at"]
    (entry,) = (
        await client.get("/admin/audit", params={"entity": "provider", "entity_id": provider_id}, headers=admin_headers)
    ).json()
    assert (entry["actor"], entry["action"]) == ("admin", "provider.balance_refresh")
    assert (entry["before"]["last_balance"], entry["after"]["last_balance"]) == (None, "42.50000")

    simulator.set_faults(FaultRule(kind="error", error="Invalid API key"))
    for method, path in (("GET", "balance"), ("POST", "balance/refresh")):
        failed = await client.request(method, f"/admin/providers/{provider_id}/{path}", headers=admin_headers)
        assert failed.status_code == 502
        assert simulator.api_key not in failed.text
    provider = (await client.get(f"/admin/providers/{provider_id}", headers=admin_headers)).json()
    assert provider["last_balance"] == "42.50"  # a failed refresh keeps the last answer
