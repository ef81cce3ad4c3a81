"""Limits of /api/v2: rate limit with Retry-After, body size, id counts, link length, the
duplicate-link guard; and the refill status kept fresh by the worker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.app import create_app
from gateway.orders.refills import sync_refills
from gateway.orders.sync import check_statuses
from gateway.v2.ratelimit import Buckets, RateLimited
from tests.conftest import serving
from tests.orders.conftest import Shop, shop_settings, shop_with

FOLLOWERS_REFILL = 101
FOLLOWERS = 102


def test_token_bucket_refills_over_time() -> None:
    now = [0.0]
    buckets = Buckets(60, clock=lambda: now[0])
    for _ in range(60):
        buckets.take("k")
    with pytest.raises(RateLimited) as caught:
        buckets.take("k")
    assert caught.value.headers == {"Retry-After": "1"}
    buckets.take("other")  # names are independent
    now[0] += 1.0
    buckets.take("k")


def test_bucket_memory_is_bounded_and_keeps_the_recent_ones() -> None:
    now = [0.0]
    buckets = Buckets(1000, clock=lambda: now[0], max_tracked=100)
    for _ in range(30):
        buckets.take("real")
    for i in range(10_000):
        buckets.take(f"made-up-{i}")
        if i % 50 == 0:
            buckets.take("real")  # in use: never the least recently used
    assert len(buckets) <= 100
    # The real one kept its level through the flood: 30 + 200 taken, 770 left (the clock stood still).
    for _ in range(770):
        buckets.take("real")
    with pytest.raises(RateLimited):
        buckets.take("real")


async def test_rate_limited_answer_is_the_protocol_error_with_retry_after(shop_limited: Shop) -> None:
    answers = [
        await shop_limited.client.post("/api/v2", data={"key": shop_limited.key, "action": "balance"}) for _ in range(7)
    ]
    assert all("balance" in a.json() for a in answers[:5])
    assert answers[5].status_code == 200
    assert answers[5].json() == {"error": "Too many requests, try again later"}
    assert int(answers[5].headers["retry-after"]) >= 1


@pytest.fixture
async def shop_limited(database_url: str) -> AsyncIterator[Shop]:
    async with shop_with(shop_settings(rate_limit_per_minute=5), database_url) as shop:
        yield shop


async def test_oversized_body_is_refused_cheaply(shop: Shop) -> None:
    response = await shop.client.post("/api/v2", data={"key": shop.key, "action": "add", "comments": "x" * 400_000})
    assert response.status_code == 200
    assert response.json() == {"error": "Incorrect request"}
    assert await shop.scalar("SELECT count(*) FROM orders") == 0


async def test_link_and_id_limits(shop: Shop) -> None:
    too_long = "https://i.com/" + "a" * 3000
    assert await shop.v2(action="add", service=shop.services[FOLLOWERS], link=too_long, quantity=100) == {
        "error": "Incorrect link"
    }
    hundred = ",".join(str(i) for i in range(1, 101))
    assert len(await shop.v2(action="status", orders=hundred)) == 100
    assert await shop.v2(action="status", orders=hundred + ",101") == {"error": "Too many ids (max 100)"}
    assert await shop.v2(action="cancel", orders=hundred + ",101") == {"error": "Too many ids (max 100)"}


@pytest.fixture
def settings() -> object:
    return shop_settings(duplicate_link_guard=True)


async def test_duplicate_link_guard(shop: Shop) -> None:
    params = {"action": "add", "service": shop.services[FOLLOWERS], "link": "https://i.com/dup", "quantity": 100}
    first = await shop.v2(**params)
    assert "order" in first
    assert await shop.v2(**params) == {
        "error": "You have active order with this link. Please wait until order being completed."
    }
    assert "order" in await shop.v2(**{**params, "link": "https://i.com/other"})
    shop.sim.state.force_order((await shop.order(first["order"])).upstream_order_id, "Completed")
    await shop.execute("UPDATE orders SET next_check_at = now()")
    await check_statuses(shop.runtime.orders, shop.runtime.providers, shop.runtime.policy.status_sync_interval_seconds)
    assert "order" in await shop.v2(**params)


async def test_worker_keeps_refill_status_fresh(shop: Shop) -> None:
    order_id = (
        await shop.v2(action="add", service=shop.services[FOLLOWERS_REFILL], link="https://i.com/r", quantity=100)
    )["order"]
    shop.sim.state.force_order((await shop.order(order_id)).upstream_order_id, "Completed")
    await shop.execute("UPDATE orders SET next_check_at = now()")
    await check_statuses(shop.runtime.orders, shop.runtime.providers, shop.runtime.policy.status_sync_interval_seconds)
    refill_id = (await shop.v2(action="refill", order=order_id))["refill"]
    upstream_refill = await shop.scalar("SELECT upstream_refill_id FROM refills WHERE id = :id", id=refill_id)
    shop.sim.state.force_refill(upstream_refill, "Completed")
    await shop.execute("UPDATE refills SET next_check_at = now()")
    assert await sync_refills(shop.runtime.orders, shop.runtime.providers) == 1
    assert await shop.v2(action="refill_status", refill=refill_id) == {"status": "Completed"}
    assert shop.sim.request_count("refill_status") == 1
    # Answered locally from now on.
    await shop.v2(action="refill_status", refill=refill_id)
    assert shop.sim.request_count("refill_status") == 1


async def test_database_down_is_a_protocol_answer_not_a_5xx() -> None:
    app = create_app(shop_settings(), database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    async with serving(app) as client:
        response = await client.post("/api/v2", data={"key": "smm_x", "action": "balance"})
    assert response.status_code == 200
    assert response.json() == {"error": "Service temporarily unavailable, try again later"}
