"""Catalog sync against the simulator over loopback, with a catalog that changes between syncs."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import httpx

from gateway.simulator.catalog import default_catalog
from gateway.simulator.runner import RunningSimulator

# The margin guard's counts (tests/catalog/test_margins.py): nothing here takes a price below the floor.
NO_MARGIN_ALERTS = {"margin_alerts": 0, "margin_off_sale": 0, "margin_repriced": 0}


async def _provider(client: httpx.AsyncClient, headers: dict[str, str], sim: RunningSimulator) -> int:
    response = await client.post(
        "/admin/providers",
        json={"name": "sim", "api_url": sim.url, "api_key": sim.api_key},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def _services(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[int, dict[str, object]]:
    response = await client.get("/admin/services", headers=headers)
    assert response.status_code == 200
    return {s["upstream_service"]: s for s in response.json()}


async def test_first_sync_creates_every_service(
    client: httpx.AsyncClient, admin_headers: dict[str, str], simulator: RunningSimulator
) -> None:
    provider_id = await _provider(client, admin_headers, simulator)
    response = await client.post(f"/admin/providers/{provider_id}/sync", headers=admin_headers)
    assert response.status_code == 200, response.text
    catalog = default_catalog()
    assert response.json() == {
        "created": len(catalog),
        "updated": 0,
        "disabled": 0,
        "unchanged": 0,
        "skipped": 0,
        **NO_MARGIN_ALERTS,
    }
    services = await _services(client, admin_headers)
    assert len(services) == len(catalog)
    sample = catalog[0]
    assert services[sample.service_id]["cost_rate"] == services[sample.service_id]["rate"]
    assert Decimal(str(services[sample.service_id]["upstream_rate"])) == sample.rate
    # Syncing again changes nothing.
    again = await client.post(f"/admin/providers/{provider_id}/sync", headers=admin_headers)
    assert again.json() == {
        "created": 0,
        "updated": 0,
        "disabled": 0,
        "unchanged": len(catalog),
        "skipped": 0,
        **NO_MARGIN_ALERTS,
    }


async def test_resync_adds_reprices_disables_and_keeps_local_edits(
    client: httpx.AsyncClient, admin_headers: dict[str, str], simulator: RunningSimulator
) -> None:
    provider_id = await _provider(client, admin_headers, simulator)
    await client.post(f"/admin/providers/{provider_id}/sync", headers=admin_headers)
    catalog = list(default_catalog())
    edited, repriced, removed = catalog[0], catalog[1], catalog[2]
    services = await _services(client, admin_headers)
    gateway_id = services[edited.service_id]["id"]
    patch = {"name": "My name", "category": "My category", "rate": "9.99", "min": edited.min_quantity + 5}
    response = await client.patch(f"/admin/services/{gateway_id}", json=patch, headers=admin_headers)
    assert response.status_code == 200, response.text

    new_service = dataclasses.replace(catalog[3], service_id=99_999, name="Brand new")
    changed = [
        dataclasses.replace(edited, rate=edited.rate * 2, name="Upstream renamed"),
        dataclasses.replace(repriced, rate=repriced.rate + Decimal("0.5")),
        *catalog[3:],
        new_service,
    ]
    simulator.state.replace_catalog(changed)
    response = await client.post(f"/admin/providers/{provider_id}/sync", headers=admin_headers)
    assert response.json() == {
        "created": 1,
        "updated": 2,
        "disabled": 1,
        "unchanged": len(catalog) - 3,
        "skipped": 0,
        **NO_MARGIN_ALERTS,
    }
    services = await _services(client, admin_headers)
    kept = services[edited.service_id]
    assert kept["id"] == gateway_id  # stable id
    assert kept["name"] == "My name"
    assert kept["category"] == "My category"
    assert kept["rate"] == "9.99"
    assert kept["min"] == edited.min_quantity + 5
    assert kept["upstream_name"] == "Upstream renamed"
    assert Decimal(str(kept["upstream_rate"])) == edited.rate * 2
    assert Decimal(str(services[repriced.service_id]["cost_rate"])) == repriced.rate + Decimal("0.5")
    assert services[removed.service_id]["for_sale"] is False
    assert services[removed.service_id]["upstream_present"] is False
    assert services[99_999]["for_sale"] is True

    # The vanished service comes back: for sale again, counted as updated.
    simulator.state.replace_catalog([*changed, removed])
    response = await client.post(f"/admin/providers/{provider_id}/sync", headers=admin_headers)
    assert response.json()["updated"] == 1
    assert (await _services(client, admin_headers))[removed.service_id]["for_sale"] is True


async def test_sync_failure_changes_nothing_and_is_reported(
    client: httpx.AsyncClient, admin_headers: dict[str, str], simulator: RunningSimulator
) -> None:
    from gateway.simulator.faults import FaultRule

    provider_id = await _provider(client, admin_headers, simulator)
    simulator.set_faults(FaultRule(kind="http_5xx", status_code=503))
    response = await client.post(f"/admin/providers/{provider_id}/sync", headers=admin_headers)
    assert response.status_code == 502
    assert "catalog sync failed" in response.json()["error"]
    assert simulator.api_key not in response.text
    assert await _services(client, admin_headers) == {}
    provider = (await client.get(f"/admin/providers/{provider_id}", headers=admin_headers)).json()
    assert provider["last_sync_error"]
    assert provider["last_sync_at"] is None
