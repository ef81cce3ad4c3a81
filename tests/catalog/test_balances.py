"""Upstream balances: reading them never writes, refreshing them is a POST, and no admin route holds
a transaction open while an upstream keeps it waiting."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from gateway.runtime import Runtime
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.faults import FaultRule
from gateway.simulator.runner import RunningSimulator, running_simulator
from tests.factories import make_provider

HANG_SECONDS = 2.0


async def _long_transactions(database_url: str) -> list[str]:
    """The queries of this database's sessions in a transaction for more than half a second
    (an upstream call waited on inside a transaction shows up here; a short unit of work does not)."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT state, query FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND xact_start < now() - interval '0.5 seconds'"
        )
    finally:
        await conn.close()
    return [f"{row['state']}: {row['query']}" for row in rows]


async def _until(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("method", "path", "action"),
    [
        ("POST", "/admin/providers/{id}/sync", "services"),
        ("GET", "/admin/providers/{id}/balance", "balance"),
        ("POST", "/admin/providers/{id}/balance/refresh", "balance"),
        ("POST", "/admin/reports/balances/refresh", "balance"),
    ],
)
async def test_no_transaction_is_held_open_while_an_upstream_hangs(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    database_url: str,
    simulator: RunningSimulator,
    method: str,
    path: str,
    action: str,
) -> None:
    provider_id = await make_provider(runtime, api_url=simulator.url, api_key=simulator.api_key, name="slow")
    # Hang once (the retry of a read then gets its answer).
    simulator.set_faults(FaultRule(kind="hang", action=action, latency=HANG_SECONDS, times=1))
    call = asyncio.create_task(client.request(method, path.format(id=provider_id), headers=admin_headers))
    await _until(lambda: simulator.request_count(action) >= 1)
    await asyncio.sleep(0.6)  # the upstream has kept the route waiting a while now

    assert await _long_transactions(database_url) == []
    started = time.monotonic()
    renamed = await client.patch(f"/admin/providers/{provider_id}", json={"name": "renamed"}, headers=admin_headers)
    assert renamed.status_code == 200, renamed.text
    assert time.monotonic() - started < 1.0
    assert not call.done(), "the upstream call was meant to be still waiting"

    answer = await asyncio.wait_for(call, timeout=30)
    assert answer.status_code == 200, answer.text
    provider = (await client.get(f"/admin/providers/{provider_id}", headers=admin_headers)).json()
    assert provider["name"] == "renamed"  # the write after the call did not undo the rename


async def test_reading_balances_never_asks_or_writes_and_refreshing_is_a_post(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, simulator: RunningSimulator
) -> None:
    async with running_simulator(SimulatorConfig(speed=0)) as failing:
        good = await make_provider(
            runtime, api_url=simulator.url, api_key=simulator.api_key, name="good", low_balance_threshold="50"
        )
        bad = await make_provider(runtime, api_url=failing.url, api_key=failing.api_key, name="bad")
        off = await make_provider(runtime, api_url=failing.url, api_key=failing.api_key, name="off", enabled=False)
        simulator.set_balance("12.34")
        failing.set_faults(FaultRule(kind="error", error="Invalid API key"))

        listed = await client.get("/admin/reports/balances", headers=admin_headers)
        assert listed.status_code == 200
        assert [(b["provider_id"], b["balance"], b["low_balance"]) for b in listed.json()] == [
            (good, None, False),
            (bad, None, False),
            (off, None, False),
        ]
        assert simulator.request_count("balance") == failing.request_count("balance") == 0

        for value in ("true", "false", ""):
            refused = await client.get("/admin/reports/balances", params={"refresh": value}, headers=admin_headers)
            assert refused.status_code == 400
            assert refused.json()["field"] == "refresh"
            assert "POST /admin/reports/balances/refresh" in refused.json()["error"]
        assert simulator.request_count("balance") == 0

        fresh = await client.post("/admin/reports/balances/refresh", headers=admin_headers)
        assert fresh.status_code == 200
        by_id = {b["provider_id"]: b for b in fresh.json()}
        assert (by_id[good]["balance"], by_id[good]["low_balance"], by_id[good]["error"]) == ("12.34", True, None)
        assert by_id[bad]["balance"] is None
        assert "Invalid API key" in by_id[bad]["error"]
        assert failing.api_key not in fresh.text
        assert (by_id[off]["balance"], by_id[off]["error"]) == (None, None)  # disabled: not asked
        assert failing.request_count("balance") >= 1
        assert [b["balance"] for b in (await client.get("/admin/reports/balances", headers=admin_headers)).json()] == [
            "12.34",
            None,
            None,
        ]
        audit = (await client.get("/admin/audit", params={"entity": "provider"}, headers=admin_headers)).json()
        assert [(a["entity_id"], a["action"]) for a in audit] == [(str(good), "provider.balance_refresh")]
