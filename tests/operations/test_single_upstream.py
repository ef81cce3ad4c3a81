"""Single-upstream mode: GATEWAY_UPSTREAM_URL + GATEWAY_UPSTREAM_KEY create and sync the provider on
start, once, whatever the number of processes starting together."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from gateway.app import create_app
from gateway.bootstrap import ensure_single_upstream, provider_name
from gateway.runtime import Runtime
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.faults import FaultRule
from gateway.simulator.runner import SimulatorThread, running_simulator
from gateway.worker import Worker
from tests.conftest import make_settings, serving
from tests.factories import make_provider
from tests.processes import worker_process
from tests.reliability.conftest import wait_for
from tests.reliability.test_crash import Db


async def rows(runtime: Runtime, sql: str, **params: Any) -> list[Any]:
    async with runtime.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


def test_provider_names_come_from_the_host() -> None:
    assert provider_name("https://panel.example.com/api/v2") == "upstream panel.example.com"
    assert provider_name("http://127.0.0.1:8765/api/v2") == "upstream 127.0.0.1:8765"


async def test_concurrent_starts_create_one_provider_and_sync_it(database_url: str) -> None:
    async with running_simulator(SimulatorConfig(speed=0)) as sim:
        settings = make_settings(upstream_url=sim.url, upstream_key=sim.api_key)
        runtimes = [Runtime.build(settings, database_url) for _ in range(4)]
        try:
            ids = await asyncio.gather(
                *(ensure_single_upstream(rt.settings, rt.sessions, rt.providers) for rt in runtimes)
            )
            assert len(set(ids)) == 1
            providers = await rows(runtimes[0], "SELECT id, name, api_url, last_sync_at FROM providers")
            assert len(providers) == 1
            assert providers[0].name == f"upstream 127.0.0.1:{sim.port}"
            assert providers[0].last_sync_at is not None
            assert (await rows(runtimes[0], "SELECT count(*) FROM services"))[0][0] == len(sim.config.catalog)
            # A later start finds it synced: no second catalog fetch.
            fetched = sim.request_count("services")
            assert (
                await ensure_single_upstream(runtimes[0].settings, runtimes[0].sessions, runtimes[0].providers)
                == ids[0]
            )
            assert sim.request_count("services") == fetched
        finally:
            for rt in runtimes:
                await rt.aclose()


async def test_a_new_key_replaces_the_old_and_names_never_clash(runtime: Runtime, database_url: str) -> None:
    async with running_simulator(SimulatorConfig(speed=0, api_key="new-key-123")) as sim:
        # An operator's provider already holds the name this mode would pick, for another URL.
        await make_provider(runtime, api_url="http://10.0.0.1/api/v2", name=f"upstream 127.0.0.1:{sim.port}")
        old = await make_provider(runtime, api_url=sim.url, api_key="old-key-123", name="mine")
        settings = make_settings(upstream_url=sim.url, upstream_key="new-key-123")
        rt = Runtime.build(settings, database_url)
        try:
            assert await ensure_single_upstream(rt.settings, rt.sessions, rt.providers) == old
        finally:
            await rt.aclose()
        (provider,) = await rows(runtime, "SELECT api_key, last_sync_at FROM providers WHERE id = :id", id=old)
        assert provider.api_key == "new-key-123"
        assert provider.last_sync_at is not None
    async with running_simulator(SimulatorConfig(speed=0)) as other:
        rt = Runtime.build(make_settings(upstream_url=other.url, upstream_key=other.api_key), database_url)
        try:
            created = await ensure_single_upstream(rt.settings, rt.sessions, rt.providers)
        finally:
            await rt.aclose()
    (name,) = await rows(runtime, "SELECT name FROM providers WHERE id = :id", id=created)
    assert name[0] == f"upstream 127.0.0.1:{other.port}"


async def test_serve_starts_even_when_the_first_sync_fails_and_the_worker_retries_it(database_url: str) -> None:
    async with running_simulator(SimulatorConfig(speed=0)) as sim:
        sim.set_faults(FaultRule(kind="http_5xx", action="services"))
        settings = make_settings(upstream_url=sim.url, upstream_key=sim.api_key, upstream_timeout_seconds=2.0)
        app = create_app(settings, database_url=database_url)
        runtime: Runtime = app.state.runtime
        started = time.monotonic()
        async with serving(app) as client:
            assert time.monotonic() - started < 5  # start-up did not wait for the sync
            assert (await client.get("/ready")).status_code == 200
            for _ in range(200):
                found = await rows(runtime, "SELECT id, last_sync_at, last_sync_error FROM providers")
                if found and found[0].last_sync_error:
                    break
                await asyncio.sleep(0.02)
            (provider,) = found
            assert provider.last_sync_at is None
            assert "502" in provider.last_sync_error
            sim.clear_faults()
            # The worker's periodic catalog sync picks up a provider that was never synced.
            assert await Worker(runtime).catalog_sync.step(time.monotonic()) == 1
        assert (await rows(runtime, "SELECT count(*) FROM services"))[0][0] == len(sim.config.catalog)


def test_gateway_worker_creates_and_syncs_the_provider(database_url: str, tmp_path: Path) -> None:
    db = Db(database_url)
    with SimulatorThread(SimulatorConfig(speed=0)) as sim:
        env = {"GATEWAY_UPSTREAM_URL": sim.url, "GATEWAY_UPSTREAM_KEY": sim.api_key}
        with worker_process(database_url, tmp_path / "worker.log", **env) as worker:
            wait_for(lambda: db.value("SELECT count(*) FROM services") == len(sim.config.catalog), timeout=30)
            assert worker.stop() == 0
        assert db.value("SELECT count(*) FROM providers") == 1
        assert db.value("SELECT api_url FROM providers") == sim.url
