"""``GET /metrics``: the Prometheus text after real traffic through the app, a simulator and Postgres."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.settings import Settings
from gateway.simulator.faults import FaultRule
from tests.conftest import make_settings, serving
from tests.orders.conftest import Shop, shop, shop_settings, sim_config

__all__ = ["shop", "sim_config"]


@pytest.fixture
def settings() -> Settings:
    # The worker runs in-process, so its step timings show up.
    return shop_settings(serve_worker=True, worker_interval_seconds=0.05)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(exposition: str) -> Samples:
    result: Samples = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            result[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return result


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


async def scrape(shop: Shop) -> Samples:
    response = await shop.client.get("/metrics")  # no admin token: not behind the guard
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_metrics_after_traffic(shop: Shop) -> None:
    followers = shop.services[102]
    add = {"action": "add", "service": followers, "link": "https://instagram.com/m", "quantity": 1000}
    assert "order" in await shop.v2(**add)
    assert "balance" in await shop.v2(action="balance")
    assert await shop.v2(action="frobnicate") == {"error": "Incorrect request"}
    assert "error" in await shop.v2(key="smm_" + "x" * 32, action="balance")
    # The upstream refuses for its own reason: the order is queued, the customer still gets its id.
    shop.sim.set_faults(FaultRule(kind="error", action="add", error="Not enough funds on balance"))
    assert "order" in await shop.v2(**add)
    shop.sim.clear_faults()

    for _ in range(100):
        found = await scrape(shop)
        if (value(found, "gateway_worker_step_duration_seconds_count", step="status_sync") or 0) >= 1:
            break
        await asyncio.sleep(0.05)
    provider = str(shop.provider_id)

    assert value(found, "gateway_v2_requests_total", action="add", outcome="ok") == 2
    assert value(found, "gateway_v2_requests_total", action="balance", outcome="ok") == 1
    assert value(found, "gateway_v2_requests_total", action="balance", outcome="error") == 1
    assert value(found, "gateway_v2_requests_total", action="unknown", outcome="error") == 1
    assert value(found, "gateway_v2_request_duration_seconds_count", action="add") == 2
    assert value(found, "gateway_v2_request_duration_seconds_bucket", action="add", le="+Inf") == 2

    assert value(found, "gateway_upstream_calls_total", provider=provider, action="add", outcome="ok") == 1
    assert value(found, "gateway_upstream_calls_total", provider=provider, action="add", outcome="rejected") == 1
    assert value(found, "gateway_upstream_calls_total", provider=provider, action="services", outcome="ok") == 1
    assert value(found, "gateway_upstream_call_duration_seconds_count", provider=provider, action="add") == 2

    assert value(found, "gateway_upstream_circuit_state", provider=provider, state="closed") == 1
    assert value(found, "gateway_upstream_circuit_state", provider=provider, state="open") == 0

    assert value(found, "gateway_database_up") == 1
    assert value(found, "gateway_orders", status="Pending", state="placed") == 1
    assert value(found, "gateway_orders", status="Pending", state="queued") == 1
    assert 0 < (value(found, "gateway_oldest_queued_order_age_seconds") or 0) < 60
    assert 0 < (value(found, "gateway_stalest_active_order_age_seconds") or 0) < 60
    for step in ("sweep", "dispatch", "status_sync", "refill_sync", "catalog_sync"):
        assert (value(found, "gateway_worker_step_duration_seconds_count", step=step) or 0) >= 1, step
    assert any(name.startswith("process_") for name, _ in found)

    # Bounded labels: only the protocol's action names (and "unknown") ever appear.
    actions = {dict(labels)["action"] for name, labels in found if name == "gateway_v2_requests_total"}
    assert actions == {"add", "balance", "unknown"}


async def test_metrics_are_per_app_and_outside_the_schema(shop: Shop) -> None:
    assert "balance" in await shop.v2(action="balance")
    other = create_app(make_settings(), database_url=shop.runtime.database_url)
    assert other.state.runtime.metrics.registry is not shop.runtime.metrics.registry
    async with serving(other) as client:
        fresh = samples((await client.get("/metrics")).text)
        assert value(fresh, "gateway_v2_requests_total", action="balance", outcome="ok") is None
        document = (await client.get("/schema/openapi.json")).json()
    assert "/metrics" not in document["paths"]
    assert value(await scrape(shop), "gateway_v2_requests_total", action="balance", outcome="ok") == 1


async def test_metrics_answer_when_the_database_is_down() -> None:
    app = create_app(make_settings(), database_url="postgresql+asyncpg://nobody@127.0.0.1:9/none")
    async with serving(app) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    found = samples(response.text)
    assert value(found, "gateway_database_up") == 0
    assert value(found, "gateway_orders", status="Pending", state="queued") is None
