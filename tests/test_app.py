"""Health, readiness and the admin guard."""

from __future__ import annotations

import httpx

from gateway.app import create_app
from tests.conftest import ADMIN_TOKEN, make_settings, serving


async def test_health_is_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_ready_when_migrated(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


async def test_not_ready_when_not_migrated(server_url: str) -> None:
    # The maintenance database of the server is never migrated.
    app = create_app(make_settings(), database_url=server_url)
    async with serving(app) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["database"] == "not migrated"


async def test_not_ready_when_database_unreachable() -> None:
    app = create_app(make_settings(), database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    async with serving(app) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}


async def test_admin_needs_the_token(client: httpx.AsyncClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": ADMIN_TOKEN},
        {"Authorization": "Basic x"},
    ):
        response = await client.get("/admin/system", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "missing or invalid admin token"
    response = await client.get("/admin/system", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 200
    assert response.json()["schema_revision"] == response.json()["schema_head"]


async def test_admin_refuses_everyone_without_a_configured_token(database_url: str) -> None:
    app = create_app(make_settings(admin_token=None), database_url=database_url)
    async with serving(app) as client:
        response = await client.get("/admin/system", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 401
    assert "GATEWAY_ADMIN_TOKEN" in response.json()["error"]


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.json()["status_code"] == 404
