"""The v2 ``services`` action: only services for sale, at the caller's price, in a stable order,
served from the price book yet never stale."""

from __future__ import annotations

import httpx

from gateway.runtime import Runtime
from tests.factories import make_customer, make_provider, make_service


async def _services(client: httpx.AsyncClient, key: str) -> list[dict[str, object]]:
    response = await client.post("/api/v2", data={"key": key, "action": "services"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    result = response.json()
    assert isinstance(result, list)
    return result


async def test_services_listing_shape_and_prices(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    provider_id = await make_provider(runtime)
    first = await make_service(runtime, provider_id, 1, upstream_rate="0.75", refill=True)
    second = await make_service(runtime, provider_id, 2, upstream_rate="2.00", upstream_category="TikTok")
    await make_service(runtime, provider_id, 3, enabled=False)
    await make_service(runtime, provider_id, 4, upstream_present=False)
    _, key = await make_customer(runtime)
    await client.post("/admin/markup-rules", json={"scope": "global", "percent": "20"}, headers=admin_headers)
    listing = await _services(client, key)
    assert listing == [
        {
            "service": first,
            "name": "Service 1",
            "type": "Default",
            "category": "Instagram",
            "rate": "0.90",
            "min": 10,
            "max": 10000,
            "refill": True,
            "cancel": False,
            "dripfeed": False,
        },
        {
            "service": second,
            "name": "Service 2",
            "type": "Default",
            "category": "TikTok",
            "rate": "2.40",
            "min": 10,
            "max": 10000,
            "refill": False,
            "cancel": False,
            "dripfeed": False,
        },
    ]


async def test_price_change_is_visible_on_the_next_call(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    provider_id = await make_provider(runtime)
    service_id = await make_service(runtime, provider_id, 1, upstream_rate="1.00")
    customer_id, key = await make_customer(runtime)
    other_id, other_key = await make_customer(runtime, name="other", discount_percent="10")
    assert (await _services(client, key))[0]["rate"] == "1.00"
    await client.post("/admin/markup-rules", json={"scope": "global", "percent": "50"}, headers=admin_headers)
    assert (await _services(client, key))[0]["rate"] == "1.50"
    assert (await _services(client, other_key))[0]["rate"] == "1.35"
    await client.patch(f"/admin/services/{service_id}", json={"rate": "3"}, headers=admin_headers)
    assert (await _services(client, key))[0]["rate"] == "3.00"
    await client.put(f"/admin/customers/{customer_id}/rates/{service_id}", json={"rate": "2.5"}, headers=admin_headers)
    assert (await _services(client, key))[0]["rate"] == "2.50"
    assert (await _services(client, other_key))[0]["rate"] == "2.70"
    # A write straight to the database (another process, a migration) is seen too.
    async with runtime.engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(text("UPDATE services SET enabled = false"))
    assert await _services(client, key) == []
    assert other_id != customer_id


async def test_balance_and_bad_keys(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _, key = await make_customer(runtime, balance="25.5")
    response = await client.post("/api/v2", data={"key": key, "action": "balance"})
    assert response.json() == {"balance": "25.50", "currency": "USD"}
    for params in ({"action": "balance"}, {"key": "", "action": "balance"}, {"key": key + "x", "action": "balance"}):
        response = await client.post("/api/v2", data=params)
        assert response.status_code == 200
        assert response.json() == {"error": "Invalid API key"}
    _, disabled_key = await make_customer(runtime, enabled=False)
    assert (await client.post("/api/v2", data={"key": disabled_key, "action": "balance"})).json() == {
        "error": "Invalid API key"
    }
    assert (await client.post("/api/v2", data={"key": key, "action": "fly"})).json() == {"error": "Incorrect request"}
