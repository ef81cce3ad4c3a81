"""Benchmark: syncing a 5,000-service catalog from the simulator over loopback.

Prints the time of a first sync (everything created), a re-sync with nothing changed and a re-sync
with every rate changed, each as a ratio to the baseline measured in the same run: the bare
upstream ``services`` call (fetch and parse, no database). Run: ``python -m tests.bench.sync_catalog``
(uses GATEWAY_TEST_DATABASE_URL, or the embedded Postgres).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from decimal import Decimal

import asyncpg
from sqlalchemy.engine import make_url

from gateway.catalog.sync import sync_provider
from gateway.db import embedded_server, migrate
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.simulator.catalog import generate_catalog
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.runner import SimulatorThread
from tests.factories import make_provider

COUNT = 5000


async def _database() -> str:
    base = os.environ.get("GATEWAY_TEST_DATABASE_URL")
    if not base:
        from pathlib import Path

        base = embedded_server(Path("var/bench-data")).get_uri()
    url = make_url(base)
    conn = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(False))
    await conn.execute("DROP DATABASE IF EXISTS gw_bench_sync WITH (FORCE)")
    await conn.execute("CREATE DATABASE gw_bench_sync")
    await conn.close()
    target = url.set(drivername="postgresql+asyncpg", database="gw_bench_sync").render_as_string(False)
    await asyncio.to_thread(migrate, target)
    return target


async def main() -> None:
    url = await _database()
    catalog = generate_catalog(COUNT, seed=7)
    settings = Settings(_env_file=None, allow_private_upstreams=True)  # type: ignore[call-arg]
    runtime = Runtime.build(settings, url)
    with SimulatorThread(SimulatorConfig(speed=0, catalog=catalog)) as sim:
        provider_id = await make_provider(runtime, api_url=sim.url, api_key=sim.api_key)
        client = runtime.upstreams.client_for(provider_id, sim.url, sim.api_key)
        start = time.perf_counter()
        fetched = await client.services()
        baseline = time.perf_counter() - start
        assert len(fetched) == COUNT
        rows = []
        for label in ("first sync (5,000 created)", "re-sync, nothing changed", "re-sync, every rate changed"):
            if label.startswith("re-sync, every"):
                sim.state.replace_catalog([dataclasses.replace(s, rate=s.rate + Decimal("0.01")) for s in catalog])
            start = time.perf_counter()
            summary = await sync_provider(runtime.sessions, runtime.providers, provider_id)
            rows.append((label, time.perf_counter() - start, summary.as_dict()))
    await runtime.aclose()
    print(f"{'what':<32} {'seconds':>8} {'x fetch':>8}  summary")
    print(f"{'baseline: upstream fetch+parse':<32} {baseline:8.3f} {1.0:8.2f}")
    for label, seconds, summary in rows:
        print(f"{label:<32} {seconds:8.3f} {seconds / baseline:8.2f}  {summary}")


if __name__ == "__main__":
    asyncio.run(main())
