"""What customers read about a service besides its price: the average delivery time of its last
completed orders and its description (the operator's, else the upstream's)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.orders.conftest import Shop

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FOLLOWERS = 102


async def listed(shop: Shop, service_id: int) -> dict[str, Any]:
    return next(s for s in await shop.v2(action="services") if s["service"] == service_id)


async def completed(shop: Shop, quantity: int, minutes: float, days_ago: int = 0) -> None:
    order_id = (
        await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/t", quantity=quantity)
    )["order"]
    await shop.execute(
        "UPDATE orders SET status = 'Completed', remains = 0,"
        " created_at = now() - make_interval(days => :days) - make_interval(secs => :seconds),"
        " completed_at = now() - make_interval(days => :days) WHERE id = :id",
        id=order_id,
        seconds=minutes * 60,
        days=days_ago,
    )


async def test_average_time_is_minutes_per_thousand_of_the_last_ten_completed_orders(shop: Shop) -> None:
    service = shop.services[FOLLOWERS]
    assert "average_time" not in await listed(shop, service)  # nothing completed yet: not known
    # An old, slow order: the 11th newest, so it no longer counts once ten newer ones exist.
    await completed(shop, 1000, 6000, days_ago=30)
    # 1,000 in 60 min -> 60; 500 in 30 -> 60; 2,000 in 240 -> 120; seven of 1,000 in 80 -> 80 each.
    await completed(shop, 1000, 60)
    await completed(shop, 500, 30)
    await completed(shop, 2000, 240)
    for _ in range(7):
        await completed(shop, 1000, 80)
    expected = round((60 + 60 + 120 + 7 * 80) / 10)  # 80
    shop.runtime.catalog._average_times_at = -1e9  # the once-a-minute refresh, now
    assert (await listed(shop, service))["average_time"] == expected
    admin = (await shop.client.get(f"/admin/services/{service}", headers=ADMIN)).json()
    assert admin["average_time"] == expected
    listing = (await shop.client.get("/admin/services", headers=ADMIN)).json()
    assert next(s for s in listing if s["id"] == service)["average_time"] == expected


async def test_the_description_is_the_operators_else_the_upstreams(shop: Shop) -> None:
    service = shop.services[FOLLOWERS]
    upstream = await shop.scalar("SELECT description FROM services WHERE id = :id", id=service)
    before = await listed(shop, service)
    assert before.get("desc") == upstream
    response = await shop.client.patch(
        f"/admin/services/{service}", json={"desc": "Bot followers.\nNo refill."}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    assert response.json()["desc"] == "Bot followers.\nNo refill."
    assert (await listed(shop, service))["desc"] == "Bot followers.\nNo refill."
    assert (await shop.client.patch(f"/admin/services/{service}", json={"desc": None}, headers=ADMIN)).json()[
        "desc"
    ] == upstream
    assert (await listed(shop, service)).get("desc") == upstream


@pytest.mark.parametrize("value", ["x" * 5001, "nul\x00", "bell\x07", 5, ["a"]])
async def test_a_bad_description_is_refused_and_changes_nothing(shop: Shop, value: Any) -> None:
    service = shop.services[FOLLOWERS]
    response = await shop.client.patch(f"/admin/services/{service}", json={"desc": value}, headers=ADMIN)
    assert response.status_code == 400, response.text
    assert await shop.scalar("SELECT description_override FROM services WHERE id = :id", id=service) is None
