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


async def test_cached_listings_follow_rates_discounts_and_revisions_at_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    """Listings are encoded once per catalog revision and pricing (own rates, discount) and shared
    by customers with the same pricing; a stale price would be a wrong charge shown, so every
    change shows on the very next call, for the customer it concerns only."""
    provider_id = await make_provider(runtime)
    service_id = await make_service(runtime, provider_id, 1, upstream_rate="1.00")
    other_service = await make_service(runtime, provider_id, 2, upstream_rate="2.00")
    first_id, first = await make_customer(runtime, name="first")
    second_id, second = await make_customer(runtime, name="second")
    _, plain = await make_customer(runtime, name="plain")
    await client.post("/admin/markup-rules", json={"scope": "global", "percent": "100"}, headers=admin_headers)

    async def rates(key: str) -> dict[object, object]:
        return {entry["service"]: entry["rate"] for entry in await _services(client, key)}

    for customer_id in (first_id, second_id):
        path = f"/admin/customers/{customer_id}/rates/{service_id}"
        assert (await client.put(path, json={"rate": "1.20"}, headers=admin_headers)).status_code < 300
    # The same own rates: the same listing, whichever asks first.
    assert await rates(first) == await rates(second) == {service_id: "1.20", other_service: "4.00"}
    assert await rates(plain) == {service_id: "2.00", other_service: "4.00"}

    # One customer's rate changes: theirs at once, the twin's and everyone else's not.
    path = f"/admin/customers/{first_id}/rates/{service_id}"
    assert (await client.put(path, json={"rate": "1.30"}, headers=admin_headers)).status_code < 300
    assert await rates(first) == {service_id: "1.30", other_service: "4.00"}
    assert await rates(second) == {service_id: "1.20", other_service: "4.00"}

    # A discount: on the services without an own rate, at once; and back.
    for percent, expected in (("10", "3.60"), ("0", "4.00")):
        patched = await client.patch(
            f"/admin/customers/{second_id}", json={"discount_percent": percent}, headers=admin_headers
        )
        assert patched.status_code < 300, patched.text
        assert await rates(second) == {service_id: "1.20", other_service: expected}
        assert await rates(first) == {service_id: "1.30", other_service: "4.00"}

    # A new catalog revision (the upstream's price moved): every pricing at once.
    async with runtime.engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(text("UPDATE services SET upstream_rate = 3.00 WHERE id = :id"), {"id": other_service})
    assert await rates(plain) == {service_id: "2.00", other_service: "6.00"}
    assert await rates(first) == {service_id: "1.30", other_service: "6.00"}
    assert await rates(second) == {service_id: "1.20", other_service: "6.00"}


def test_cached_listings_stay_within_their_byte_bound() -> None:
    from decimal import Decimal

    from gateway.catalog.pricebook import _Listings

    listings = _Listings(max_bytes=1000)
    for number in range(50):
        listings.put((number, Decimal(0)), b"x" * 100)
        assert listings.bytes <= 1000
    assert len(listings) == 10
    assert listings.get((0, Decimal(0))) is None  # the least recently used went first
    assert listings.get((49, Decimal(0))) == b"x" * 100
    listings.get((40, Decimal(0)))
    listings.put((50, Decimal(0)), b"y" * 100)
    assert listings.get((40, Decimal(0))) is not None  # used recently: kept
    assert listings.get((41, Decimal(0))) is None
