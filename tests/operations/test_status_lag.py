"""``gateway_status_check_lag_seconds``: how far the status sync is behind, in ``/metrics``.

It shows the seconds the most overdue live order has waited past its next check, and 0 when
no live order is overdue (nothing due yet, or the only overdue orders are finished).
"""

from __future__ import annotations

from tests.operations.test_metrics import scrape, value
from tests.orders.conftest import Shop, shop, sim_config

__all__ = ["shop", "sim_config"]


async def _lag(shop: Shop) -> float:
    found = await scrape(shop)
    lag = value(found, "gateway_status_check_lag_seconds")
    assert lag is not None
    return lag


async def _place(shop: Shop, link: str) -> int:
    add = {"action": "add", "service": shop.services[102], "link": link, "quantity": 1000}
    order = await shop.v2(**add)
    assert "order" in order, order
    return int(order["order"])


async def test_the_lag_shows_overdue_seconds_and_zero_when_none_is_overdue(shop: Shop) -> None:
    assert await _lag(shop) == 0  # no orders at all
    first = await _place(shop, "https://instagram.com/lag1")
    second = await _place(shop, "https://instagram.com/lag2")
    assert (await shop.order(first)).state == "placed"
    assert await _lag(shop) == 0  # placed, first check still ahead

    await shop.execute("UPDATE orders SET next_check_at = now() - interval '90 seconds' WHERE id = :id", id=first)
    await shop.execute("UPDATE orders SET next_check_at = now() - interval '30 seconds' WHERE id = :id", id=second)
    assert 90 <= await _lag(shop) < 90 + 600  # the most overdue one; generous for a slow machine

    # A finished order is followed no more: however old its next check, it is not lag.
    await shop.execute("UPDATE orders SET status = 'Completed', remains = 0 WHERE id = :id", id=first)
    assert 30 <= await _lag(shop) < 30 + 600

    # Checked: the next check is ahead again, nothing is overdue.
    assert await shop.sync_statuses() == 1
    assert (await shop.order(second)).next_check_at is not None
    assert await _lag(shop) == 0
