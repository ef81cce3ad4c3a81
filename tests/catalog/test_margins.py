"""The margin guard: the simulator raises prices, a sync follows GATEWAY_MARGIN_POLICY, one alert per
service, and everything closes (and goes back on sale) when the price comes back."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.money import format_money
from gateway.settings import Settings
from gateway.simulator.catalog import Service, default_catalog
from gateway.simulator.runner import RunningSimulator
from tests.conftest import make_settings

MIN_MARGIN = Decimal("10")


@pytest.fixture(params=["alert", "disable", "reprice"])
def settings(request: pytest.FixtureRequest) -> Settings:
    return make_settings(min_margin_percent=MIN_MARGIN, margin_policy=request.param)


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


class Scene:
    """A provider synced from the simulator, five services priced five ways, and a customer."""

    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str], sim: RunningSimulator) -> None:
        self.client, self.headers, self.sim = client, headers, sim
        self.catalog = [s for s in default_catalog() if s.rate > 0][:5]
        # upstream id -> gateway id
        self.ids: dict[int, int] = {}
        self.provider_id = 0
        self.customer_id = 0

    async def setup(self) -> None:
        body = {"name": "sim", "api_url": self.sim.url, "api_key": self.sim.api_key}
        self.provider_id = (
            await _ok(await self.client.post("/admin/providers", json=body, headers=self.headers), 201)
        )["id"]
        await self.sync()
        services = await _ok(await self.client.get("/admin/services", headers=self.headers))
        self.ids = {s["upstream_service"]: s["id"] for s in services}
        _markup, fixed, own, computed, small = self.catalog
        await self.post("/admin/markup-rules", {"scope": "global", "percent": "20"}, 201)
        # A flat markup: 15 % of today's cost, so a doubled cost takes it under the 10 % floor (and the
        # floor lifts it: a computed price).
        flat = (computed.rate * Decimal("0.15")).quantize(Decimal("0.000001"))
        rule = {"scope": "service", "target": self.ids[computed.service_id], "percent": "0", "fixed": str(flat)}
        await self.post("/admin/markup-rules", rule, 201)
        await self.patch(f"/admin/services/{self.ids[fixed.service_id]}", {"rate": str(fixed.rate * Decimal("1.3"))})
        await self.patch(f"/admin/services/{self.ids[small.service_id]}", {"rate": str(small.rate * Decimal("1.5"))})
        customer = await self.post("/admin/customers", {"name": "own-rate"}, 201)
        self.customer_id = customer["id"]
        rate_path = f"/admin/customers/{self.customer_id}/rates/{self.ids[own.service_id]}"
        await _ok(await self.client.put(rate_path, json={"rate": str(own.rate * Decimal("1.2"))}, headers=self.headers))

    async def post(self, path: str, body: dict[str, Any], status: int = 200) -> Any:
        return await _ok(await self.client.post(path, json=body, headers=self.headers), status)

    async def patch(self, path: str, body: dict[str, Any]) -> Any:
        return await _ok(await self.client.patch(path, json=body, headers=self.headers))

    async def sync(self) -> dict[str, int]:
        result: dict[str, int] = await self.post(f"/admin/providers/{self.provider_id}/sync", {})
        return result

    def upstream_prices(self, factors: dict[int, Decimal]) -> None:
        """The simulator's catalog with these services' rates multiplied (upstream id -> factor)."""
        changed: list[Service] = [
            dataclasses.replace(s, rate=s.rate * factors[s.service_id]) if s.service_id in factors else s
            for s in default_catalog()
        ]
        self.sim.state.replace_catalog(changed)

    async def open_margin_alerts(self) -> dict[int, dict[str, Any]]:
        alerts = await _ok(
            await self.client.get("/admin/alerts", params={"open": "true", "kind": "margin"}, headers=self.headers)
        )
        return {a["details"]["service_id"]: a for a in alerts}

    async def for_sale(self) -> dict[int, bool]:
        services = await _ok(await self.client.get("/admin/services", headers=self.headers))
        # Off sale by the margin guard shows as such, next to the operator's own "enabled".
        assert all((s["margin_hold_since"] is not None) <= (not s["for_sale"]) for s in services)
        assert all(s["enabled"] for s in services)
        return {s["id"]: s["for_sale"] for s in services}


async def test_price_rise_follows_the_policy_one_alert_each_and_closes_when_the_price_comes_back(
    client: httpx.AsyncClient, admin_headers: dict[str, str], simulator: RunningSimulator, settings: Settings
) -> None:
    scene = Scene(client, admin_headers, simulator)
    await scene.setup()
    markup, fixed, own, computed, small = scene.catalog
    policy = settings.margin_policy
    assert await scene.open_margin_alerts() == {}

    rise = {s.service_id: Decimal("2") for s in (markup, fixed, own, computed)}
    rise[small.service_id] = Decimal("1.05")  # a rise that leaves the fixed rate above the floor
    scene.upstream_prices(rise)
    summary = await scene.sync()

    typed = {scene.ids[fixed.service_id], scene.ids[own.service_id]}
    computed_id = scene.ids[computed.service_id]
    alerted = typed if policy == "reprice" else {*typed, computed_id}
    off_sale = {"alert": set(), "disable": alerted, "reprice": typed}[policy]
    assert summary["updated"] == 5
    assert summary["margin_alerts"] == len(alerted)
    assert summary["margin_off_sale"] == len(off_sale)
    assert summary["margin_repriced"] == 1  # the computed one: the floor lifted it

    alerts = await scene.open_margin_alerts()
    assert set(alerts) == alerted
    fixed_alert = alerts[scene.ids[fixed.service_id]]
    assert fixed_alert["subject"] == f"service:{scene.ids[fixed.service_id]}"
    assert [p["price"] for p in fixed_alert["details"]["below_floor"]] == ["fixed"]
    assert fixed_alert["details"]["policy"] == policy
    assert fixed_alert["details"]["off_sale"] is (policy != "alert")
    own_alert = alerts[scene.ids[own.service_id]]
    assert [p["price"] for p in own_alert["details"]["below_floor"]] == ["customer"]
    assert own_alert["details"]["below_floor"][0]["customer_id"] == scene.customer_id
    sale = await scene.for_sale()
    for service_id in {*typed, computed_id, scene.ids[markup.service_id], scene.ids[small.service_id]}:
        assert sale[service_id] is (service_id not in off_sale), service_id
    # The computed price is at the floor, whatever the policy.
    priced = {s["id"]: s for s in await _ok(await client.get("/admin/services", headers=admin_headers))}
    cost = Decimal(priced[computed_id]["cost_rate"])
    assert Decimal(priced[computed_id]["rate"]) >= cost * (1 + MIN_MARGIN / 100)

    # The same condition at the next sync: no second alert, nothing else changes.
    again = await scene.sync()
    assert again["margin_alerts"] == 0
    assert again["margin_off_sale"] == 0
    kept = await scene.open_margin_alerts()
    assert set(kept) == alerted
    # The cost before the rise stays in the details although this sync saw no rise.
    assert kept[scene.ids[fixed.service_id]]["details"]["previous_cost_rate"] == format_money(fixed.rate)
    assert kept[scene.ids[fixed.service_id]]["details"]["cost_rate"] == format_money(fixed.rate * 2)
    all_margin = await _ok(await client.get("/admin/alerts", params={"kind": "margin"}, headers=admin_headers))
    assert len(all_margin) == len(alerted)
    metrics = (await client.get("/metrics")).text
    assert f'gateway_alerts_open{{kind="margin"}} {float(len(alerted))}' in metrics

    # The price comes back: every alert closes and every held service is on sale again.
    scene.upstream_prices({})
    back = await scene.sync()
    assert back["margin_alerts"] == 0
    assert await scene.open_margin_alerts() == {}
    closed = await _ok(
        await client.get("/admin/alerts", params={"open": "false", "kind": "margin"}, headers=admin_headers)
    )
    assert {a["details"]["service_id"] for a in closed} == alerted
    assert all(a["closed_at"] is not None and a["open"] is False for a in closed)
    sale = await scene.for_sale()
    assert all(sale[service_id] for service_id in alerted)
    assert 'gateway_alerts_open{kind="margin"} 0.0' in (await client.get("/metrics")).text


async def test_a_typed_price_below_cost_without_a_rise_is_the_operators_decision(
    client: httpx.AsyncClient, admin_headers: dict[str, str], simulator: RunningSimulator
) -> None:
    scene = Scene(client, admin_headers, simulator)
    await scene.setup()
    fixed = scene.catalog[1]
    await scene.patch(f"/admin/services/{scene.ids[fixed.service_id]}", {"rate": str(fixed.rate / 2)})
    summary = await scene.sync()
    assert summary["margin_alerts"] == 0
    assert await scene.open_margin_alerts() == {}
    assert (await scene.for_sale())[scene.ids[fixed.service_id]] is True
