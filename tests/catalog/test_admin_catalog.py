"""Admin endpoints of the catalog: providers, services, markup rules, customer rates — and the
bad input each must refuse without changing anything."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.runtime import Runtime
from tests.factories import make_customer, make_provider, make_service

PROVIDER = {"name": "panel", "api_url": "https://panel.example.com/api/v2", "api_key": "secret-upstream-key"}


@pytest.fixture
def settings() -> Any:
    from tests.conftest import make_settings

    # A real operator's setting: private addresses refused.
    return make_settings(allow_private_upstreams=False, min_margin_percent="5")


async def test_provider_crud_never_returns_the_key(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    created = await client.post(
        "/admin/providers", json={**PROVIDER, "fx_rate": "0.0125", "currency": "inr"}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["currency"] == "INR"
    assert body["fx_rate"] == "0.0125"
    assert "api_key" not in body
    provider_id = body["id"]
    for response in (
        await client.get("/admin/providers", headers=admin_headers),
        await client.get(f"/admin/providers/{provider_id}", headers=admin_headers),
        await client.patch(f"/admin/providers/{provider_id}", json={"enabled": False}, headers=admin_headers),
    ):
        assert response.status_code == 200
        assert "secret-upstream-key" not in response.text
    assert (await client.get(f"/admin/providers/{provider_id}", headers=admin_headers)).json()["enabled"] is False
    duplicate = await client.post("/admin/providers", json=PROVIDER, headers=admin_headers)
    assert duplicate.status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**PROVIDER, "api_url": "http://127.0.0.1/api/v2"}, "api_url"),
        ({**PROVIDER, "api_url": "http://169.254.169.254/latest"}, "api_url"),
        ({**PROVIDER, "api_url": "http://2130706433/api/v2"}, "api_url"),
        ({**PROVIDER, "api_url": "http://[::1]/api/v2"}, "api_url"),
        ({**PROVIDER, "api_url": "http://localhost/api/v2"}, "api_url"),
        ({**PROVIDER, "api_url": "ftp://panel.example.com/"}, "api_url"),
        ({**PROVIDER, "api_url": "not a url"}, "api_url"),
        ({**PROVIDER, "fx_rate": "-1"}, "fx_rate"),
        ({**PROVIDER, "fx_rate": "abc"}, "fx_rate"),
        ({**PROVIDER, "fx_rate": "NaN"}, "fx_rate"),
        ({**PROVIDER, "fx_rate": 1.5}, "fx_rate"),
        ({**PROVIDER, "currency": "DOLLARS"}, "currency"),
        ({**PROVIDER, "name": ""}, "name"),
        ({**PROVIDER, "name": "x" * 201}, "name"),
        ({**PROVIDER, "api_key": ""}, "api_key"),
        ({**PROVIDER, "surprise": 1}, None),
        ({"name": "only"}, None),
    ],
)
async def test_bad_provider_input_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str], body: dict[str, Any], field: str | None
) -> None:
    response = await client.post("/admin/providers", json=body, headers=admin_headers)
    assert response.status_code == 400, response.text
    if field is not None:
        assert response.json().get("field") == field
    assert (await client.get("/admin/providers", headers=admin_headers)).json() == []


async def test_unknown_provider_is_404(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    for method, path in (
        ("GET", "/admin/providers/999"),
        ("POST", "/admin/providers/999/sync"),
        ("GET", "/admin/providers/999/balance"),
        ("POST", "/admin/providers/999/balance/refresh"),
    ):
        response = await client.request(method, path, headers=admin_headers)
        assert response.status_code == 404


async def test_services_show_cost_and_rate_and_accept_local_edits(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    provider_id = await make_provider(runtime, fx_rate="0.5")
    service_id = await make_service(runtime, provider_id, upstream_rate="2.00", upstream_min=10, upstream_max=1000)
    rule = await client.post("/admin/markup-rules", json={"scope": "global", "percent": "20"}, headers=admin_headers)
    assert rule.status_code == 201
    listed = (await client.get("/admin/services", headers=admin_headers)).json()
    assert listed[0]["cost_rate"] == "1.00"
    assert listed[0]["rate"] == "1.20"
    assert listed[0]["rate_source"] == "markup:global"

    below = await client.patch(f"/admin/services/{service_id}", json={"rate": "0.50"}, headers=admin_headers)
    assert below.status_code == 200
    assert below.json()["rate"] == "0.50"
    assert below.json()["below_cost"] is True

    for patch, field in (
        ({"min": 5}, "min"),  # wider than upstream
        ({"max": 5000}, "max"),
        ({"min": 500, "max": 100}, "max"),
        ({"rate": "-1"}, "rate"),
        ({"rate": "1.1234567"}, "rate"),
        ({"rate": "lots"}, "rate"),
        ({"name": ""}, "name"),
        ({"enabled": None}, "enabled"),
    ):
        response = await client.patch(f"/admin/services/{service_id}", json=patch, headers=admin_headers)
        assert response.status_code == 400, (patch, response.text)
        assert response.json()["field"] == field
    unknown = await client.patch(f"/admin/services/{service_id}", json={"colour": "red"}, headers=admin_headers)
    assert unknown.status_code == 400
    assert (
        await client.patch("/admin/services/424242", json={"enabled": False}, headers=admin_headers)
    ).status_code == 404
    # The refused edits changed nothing.
    current = (await client.get(f"/admin/services/{service_id}", headers=admin_headers)).json()
    assert (current["rate"], current["min"], current["max"], current["name"]) == ("0.50", 10, 1000, "Service 1")
    cleared = await client.patch(f"/admin/services/{service_id}", json={"rate": None}, headers=admin_headers)
    assert cleared.json()["rate"] == "1.20"


async def test_the_pricing_floor_is_published_for_the_console(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """The console's markup preview applies GATEWAY_MIN_MARGIN_PERCENT as the server does."""
    system = (await client.get("/admin/system", headers=admin_headers)).json()
    assert system["min_margin_percent"] == "5"
    assert (system["margin_policy"], system["drift_alert_percent"]) == ("alert", "2")


async def test_markup_rules_validation(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    provider_id = await make_provider(runtime)
    service_id = await make_service(runtime, provider_id)
    good = [
        {"scope": "global", "percent": "10"},
        {"scope": "provider", "target": provider_id, "percent": "15"},
        {"scope": "category", "target": "Instagram", "percent": "20", "fixed": "0.01"},
        {"scope": "service", "target": str(service_id), "percent": "25"},
    ]
    for body in good:
        response = await client.post("/admin/markup-rules", json=body, headers=admin_headers)
        assert response.status_code == 201, response.text
    bad = [
        ({"scope": "global", "percent": "-5"}, "percent"),
        ({"scope": "global", "percent": "100000"}, "percent"),
        ({"scope": "global", "percent": "ten"}, "percent"),
        ({"scope": "planet", "percent": "5"}, "scope"),
        ({"scope": "provider", "target": 999, "percent": "5"}, "target"),
        ({"scope": "service", "target": "abc", "percent": "5"}, "target"),
        ({"scope": "category", "target": "", "percent": "5"}, "target"),
        ({"scope": "global", "target": 1, "percent": "5"}, "target"),
        ({"scope": "global", "percent": "5", "fixed": "-0.1"}, "fixed"),
    ]
    for body, field in bad:
        response = await client.post("/admin/markup-rules", json=body, headers=admin_headers)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["field"] == field
    conflict = await client.post(
        "/admin/markup-rules", json={"scope": "global", "percent": "11"}, headers=admin_headers
    )
    assert conflict.status_code == 409
    rules = (await client.get("/admin/markup-rules", headers=admin_headers)).json()
    assert len(rules) == 4
    # The service rule wins.
    assert (await client.get(f"/admin/services/{service_id}", headers=admin_headers)).json()["rate"] == "1.25"
    assert (await client.delete(f"/admin/markup-rules/{rules[3]['id']}", headers=admin_headers)).status_code == 204
    assert (await client.get(f"/admin/services/{service_id}", headers=admin_headers)).json()["rate"] == "1.21"
    assert (await client.delete(f"/admin/markup-rules/{rules[3]['id']}", headers=admin_headers)).status_code == 404


async def test_customer_rates(client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime) -> None:
    provider_id = await make_provider(runtime)
    service_id = await make_service(runtime, provider_id)
    customer_id, _ = await make_customer(runtime)
    path = f"/admin/customers/{customer_id}/rates/{service_id}"
    assert (await client.put(path, json={"rate": "0.95"}, headers=admin_headers)).json()["rate"] == "0.95"
    assert (await client.put(path, json={"rate": "0.97"}, headers=admin_headers)).json()["rate"] == "0.97"
    assert len((await client.get(f"/admin/customers/{customer_id}/rates", headers=admin_headers)).json()) == 1
    for body in ({"rate": "-1"}, {"rate": "x"}, {"rate": 0.5}, {"rate": "1", "extra": 1}, {}):
        assert (await client.put(path, json=body, headers=admin_headers)).status_code == 400
    assert (
        await client.put(f"/admin/customers/999/rates/{service_id}", json={"rate": "1"}, headers=admin_headers)
    ).status_code == 404
    assert (
        await client.put(f"/admin/customers/{customer_id}/rates/999", json={"rate": "1"}, headers=admin_headers)
    ).status_code == 404
    assert (await client.delete(path, headers=admin_headers)).status_code == 204
    assert (await client.delete(path, headers=admin_headers)).status_code == 404


async def test_every_catalog_route_needs_the_token(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/admin/providers"),
        ("POST", "/admin/providers"),
        ("GET", "/admin/services"),
        ("POST", "/admin/markup-rules"),
        ("PUT", "/admin/customers/1/rates/1"),
    ):
        response = await client.request(method, path, headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401
